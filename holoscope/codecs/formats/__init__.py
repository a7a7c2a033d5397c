"""One module per file format; each exposes an opener (path -> Media) and optionally a writer."""
