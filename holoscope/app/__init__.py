"""The Qt desktop app. The only package that may import PySide6; nothing outside imports it."""
