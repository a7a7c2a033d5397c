"""holoscope: viewer, player and headless renderer for compressed 3D and neural video.

The package root stays import-light: importing ``holoscope`` pulls in neither Qt nor torch.
"""

__version__ = "0.1.0"
