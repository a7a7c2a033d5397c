"""The torch side of hash-grid scenes (the one kind of folder torch may be imported in)."""
