"""Headless core: media model, errors, format registry, cameras and camera paths.

Nothing in here imports Qt, torch or moderngl.
"""
