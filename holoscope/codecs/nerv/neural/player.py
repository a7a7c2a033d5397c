"""The torch side of playing a .nerv stream: the decoder filled once from the stored weights and
prepared for its device's fast path (:func:`~holoscope.codecs.nerv.neural.model.prepare`: on
the CPU channels-last with bf16 blocks where the CPU has native bf16, on CUDA fp16 blocks;
``HOLOSCOPE_NERV_FP32=1`` keeps plain float32), then one frame at a time (batch 1,
``inference_mode``) to an rgb24 picture.

The device is CUDA when torch sees one, else the CPU; ``HOLOSCOPE_NERV_DEVICE`` (``cpu``,
``cuda``, ``cuda:1``) chooses. On CUDA the picture is made 8-bit on the GPU and copied to host
memory on the decode thread (3 bytes a pixel cross the bus, not 12): the GL upload reads host
memory, and without CUDA-GL interop, keeping the frame on the GPU until then would only move that
copy onto the GUI thread."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch

from holoscope.codecs.nerv.config import NervConfig
from holoscope.codecs.nerv.neural.model import build_decoder, decode, frame_times, load_state, prepare
from holoscope.core.errors import InvalidArgument


DEVICE_ENV = "HOLOSCOPE_NERV_DEVICE"


def decode_device() -> torch.device:
    """Where .nerv streams decode: ``HOLOSCOPE_NERV_DEVICE``, else CUDA when present, else CPU."""
    chosen = os.environ.get(DEVICE_ENV, "").strip()
    if chosen:
        try:
            device = torch.device(chosen)
        except RuntimeError:
            raise InvalidArgument(f"{DEVICE_ENV}={chosen!r} is not a torch device (cpu, cuda, cuda:1)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidArgument(f"{DEVICE_ENV}={chosen!r}, but torch sees no CUDA device")
        return device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


class NervDecoder:
    """An HNeRV decoder holding a stream's dequantised weights."""

    def __init__(self, config: NervConfig, weights: Mapping, *, path=None, device: torch.device | None = None) -> None:
        tensors = {name: torch.from_numpy(np.ascontiguousarray(q.dequantise())) for name, q in weights.items()}
        self.config = config
        self.device = device if device is not None else decode_device()
        self.module = prepare(load_state(build_decoder(config), tensors, path=path), self.device)

    @property
    def path(self) -> str:
        """What decodes, for ``info``: device and precision."""
        return f"torch {self.device.type} ({getattr(self.module, 'fast', None) or 'fp32'})"

    def decode(self, embedding: np.ndarray | int) -> np.ndarray:
        """One frame -> uint8 [H, W, 3] (the float output in [0, 1], rounded). HNeRV takes the
        frame's embedding [C, h, w]; NeRV takes the frame's index (its time is index / frames)."""
        if self.config.family == "hnerv":
            inputs = torch.from_numpy(np.ascontiguousarray(embedding, np.float32))[None]
        else:
            inputs = frame_times([int(embedding)], self.config.frame_count)
        out = decode(self.module, inputs, batch=1, device=self.device)[0]
        rgb = (out * 255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
        return rgb.cpu().numpy()
