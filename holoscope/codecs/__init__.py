"""File formats, entropy coding and video containers."""
