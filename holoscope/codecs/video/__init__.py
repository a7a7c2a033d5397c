"""PyAV-backed video containers: encoding and decoding."""
