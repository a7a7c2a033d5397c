"""NeRV-family neural video (issue 10): HNeRV and NeRV decoders.

``config`` describes a decoder completely and never imports torch; the torch parts (the
decoder modules in ``neural/model.py`` and the import of the official checkpoints in
``neural/checkpoint.py``) live under ``neural/``, the only place the layer rules let torch in.
"""
