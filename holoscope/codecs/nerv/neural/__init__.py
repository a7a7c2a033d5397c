"""The torch side of NeRV-family video: decoder modules (``model``) and the import of the official
HNeRV / NeRV checkpoints (``checkpoint``). The layer rules allow torch only under ``neural/``."""
