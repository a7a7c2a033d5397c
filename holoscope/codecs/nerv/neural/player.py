"""The torch side of playing a .nerv stream: the decoder filled once from the stored weights and
prepared for the fast CPU path (channels-last, bf16 blocks where the CPU has native bf16; see
:func:`~holoscope.codecs.nerv.neural.model.prepare`, ``HOLOSCOPE_NERV_FP32=1`` keeps plain
float32), then one frame at a time (batch 1, ``inference_mode``) to an rgb24 picture."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from holoscope.codecs.nerv.config import NervConfig
from holoscope.codecs.nerv.neural.model import build_decoder, decode, load_state, prepare


class NervDecoder:
    """An HNeRV decoder holding a stream's dequantised weights."""

    def __init__(self, config: NervConfig, weights: Mapping, *, path=None) -> None:
        tensors = {name: torch.from_numpy(np.ascontiguousarray(q.dequantise())) for name, q in weights.items()}
        self.config = config
        self.module = prepare(load_state(build_decoder(config), tensors, path=path), "cpu")

    def decode(self, embedding: np.ndarray) -> np.ndarray:
        """One embedding [C, h, w] -> uint8 [H, W, 3] (the float output in [0, 1], rounded)."""
        inputs = torch.from_numpy(np.ascontiguousarray(embedding, np.float32))[None]
        out = decode(self.module, inputs, batch=1)[0]
        rgb = (out * 255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()
        return rgb.numpy()
