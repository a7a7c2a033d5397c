"""Volumetric Gaussian video: dynamic splats packed into ordinary video streams (V^3 streams
and holoscope's own .gsv format)."""
