"""What image and NeRF training share: tiny-cuda-nn's Adam on one flat parameter tensor, its
parameter initialisation, instant-ngp's Huber loss, the fit result, and the step/time budget.

Rules followed (tiny-cuda-nn ``optimizers/adam.h``, ``exponential_decay.h``, ``ema.h``):

- Adam with beta1 0.9, beta2 0.99, epsilon 1e-15, learning rate 1e-2 (instant-ngp's configs).
- L2 regularisation (1e-6) on the MLP matrices only; the grid has none.
- Grid entries whose gradient is exactly zero are not touched (``skip_zero_grad_non_matrix_params``,
  on by default): their moments, weights and step counters stay as they are, so entries no
  sample reached neither drift nor decay. Each parameter keeps its own step count for the
  bias correction.
- ExponentialDecay: the learning rate is multiplied by 0.33 at step 20000 and every 10000 after.
- NeRF's ``Ema`` wrapper (decay 0.95): the weights a snapshot stores (tiny-cuda-nn's inference
  parameters) are the debiased exponential moving average of the trained ones.
- Initialisation: each MLP matrix Xavier-uniform (``sqrt(6 / (rows + columns))`` on the padded
  shape), the grid uniform in +-1e-4.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from holoscope.codecs.hashgrid.snapshot import MlpShape
from holoscope.core.errors import InvalidArgument

LEARNING_RATE = 1e-2
BETAS = (0.9, 0.99)
EPSILON = 1e-15
L2_REG = 1e-6
DECAY_START, DECAY_INTERVAL, DECAY_BASE = 20000, 10000, 0.33
GRID_INIT = 1e-4
EMA_DECAY = 0.95  # NeRF's "Ema" optimizer wrapper

Progress = Callable[[int, int, str], None]  # progress(done, total, note), as TerminalProgress takes it


@dataclass
class FitResult:
    """A trained scene: its instant-ngp snapshot document and how it was made."""

    document: dict  # writer.snapshot_document(...): write it with writer.write_snapshot
    image_size: tuple[int, int]  # (width, height): the image, or a NeRF's training views
    psnr: float  # dB: image mode the full image, NeRF the mean over held-out views (as stored, fp16)
    steps: int
    seconds: float
    n_params: int
    loss: float = math.nan  # the last training batch's loss
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, seconds, batch PSNR dB)
    view_psnr: list[float] = field(default_factory=list)  # NeRF: PSNR of each scored held-out view
    held_out: list[int] = field(default_factory=list)  # NeRF: the held-out frames scored (dataset indices)


def readable(document: dict) -> dict:
    """``document`` with its binary blobs as ``memoryview``, as :func:`..snapshot.read_document`
    returns them, so :func:`..snapshot.parse_snapshot` takes it as it is (and ``packb`` still
    writes it)."""
    snap = document.get("snapshot", {})
    for key in ("params_binary", "density_grid_binary"):
        if isinstance(snap.get(key), (bytes, bytearray)):
            snap[key] = memoryview(snap[key])
    return document


def check_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidArgument(f"{device!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("--device cuda, but torch sees no CUDA device (a CPU build of torch, or no GPU)")
    if dev.type not in ("cpu", "cuda"):
        raise InvalidArgument(f"training runs on cpu or cuda, not {dev.type}")
    return dev


def check_budget(steps: object, seconds: object) -> tuple[int, float | None]:
    if type(steps) is not int or steps < 1:
        raise InvalidArgument(f"steps must be a positive integer, got {steps!r}")
    if seconds is not None:
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not (math.isfinite(seconds)
                                                                                      and seconds > 0):  # fmt: skip
            raise InvalidArgument(f"seconds must be a positive number, got {seconds!r}")
        seconds = float(seconds)
    return steps, seconds


class Clock:
    """Training time, for the ``seconds`` budget and the history."""

    def __init__(self, seconds: float | None) -> None:
        self.start = time.monotonic()
        self.limit = seconds

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def expired(self) -> bool:
        return self.limit is not None and self.elapsed >= self.limit


def psnr_of(mse: float) -> float:
    return math.inf if mse <= 0 else -10.0 * math.log10(mse)


def init_params(mlps: tuple[MlpShape, ...], n_grid: int, generator: torch.Generator) -> torch.Tensor:
    """All parameters in tiny-cuda-nn order (MLPs, then the grid), initialised as tcnn does."""
    parts = []
    for mlp in mlps:
        for rows, cols in mlp.matrices:
            scale = math.sqrt(6.0 / (rows + cols))
            parts.append((torch.rand(rows * cols, generator=generator) * 2 - 1) * scale)
    parts.append((torch.rand(n_grid, generator=generator) * 2 - 1) * GRID_INIT)
    return torch.cat(parts).float()


def huber_ngp(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """instant-ngp's NeRF Huber loss per element: Huber with delta 0.1, divided by 5 so that its
    quadratic part is the squared error (``nerf_device.cuh`` ``loss_and_gradient``)."""
    return 2.0 * torch.nn.functional.huber_loss(prediction, target, reduction="none", delta=0.1)


def learning_rate_at(step: int, base: float = LEARNING_RATE) -> float:
    """ExponentialDecay: x0.33 at step 20000 and every 10000 steps after (0-based step)."""
    if step < DECAY_START:
        return base
    return base * DECAY_BASE ** ((step - DECAY_START) // DECAY_INTERVAL + 1)


class TcnnAdam:
    """tiny-cuda-nn's Adam on one flat tensor whose first ``n_matrix`` values are MLP matrices
    and the rest grid entries (see the module doc)."""

    def __init__(self, params: torch.Tensor, n_matrix: int, *, lr: float = LEARNING_RATE,
                 l2_reg: float = L2_REG) -> None:  # fmt: skip
        self.params, self.n_matrix, self.lr, self.l2_reg = params, n_matrix, lr, l2_reg
        self.m = torch.zeros_like(params)
        self.v = torch.zeros_like(params)
        self.grid_steps = torch.zeros(params.numel() - n_matrix, dtype=torch.int32, device=params.device)
        self.step_count = 0
        self._table = torch.zeros(1, device=params.device)

    def _correction(self, top: int) -> torch.Tensor:
        """Adam's bias correction ``sqrt(1 - b2^t) / (1 - b1^t)`` for t = 0..top (a grid entry's
        step count is at most the optimiser's), computed in float64 once per doubling."""
        if self._table.numel() <= top:
            b1, b2 = BETAS
            t = torch.arange(2 * top + 2, dtype=torch.float64)
            table = torch.sqrt(1 - b2**t) / (1 - b1**t)
            table[0] = 0.0
            self._table = table.to(self.params.dtype).to(self.params.device)
        return self._table

    def step(self) -> None:
        grad = self.params.grad
        if grad is None:
            return
        b1, b2 = BETAS
        lr = learning_rate_at(self.step_count, self.lr)
        self.step_count += 1
        with torch.no_grad():
            # MLP matrices: every value, one shared step count.
            n = self.n_matrix
            w, g = self.params[:n], grad[:n] + self.l2_reg * self.params[:n]
            m, v = self.m[:n], self.v[:n]
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            t = self.step_count
            rate = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
            w.sub_(rate * m / (v.sqrt() + EPSILON))
            # Grid: only the entries that got a gradient, each with its own step count.
            gg = grad[n:]
            idx = torch.nonzero(gg).squeeze(1)
            if idx.numel():
                g = gg[idx]
                m = self.m[n:].index_select(0, idx).mul_(b1).add_(g, alpha=1 - b1)
                v = self.v[n:].index_select(0, idx).mul_(b2).addcmul_(g, g, value=1 - b2)
                steps = self.grid_steps.index_select(0, idx).add_(1)
                self.m[n:].index_copy_(0, idx, m)
                self.v[n:].index_copy_(0, idx, v)
                self.grid_steps.index_copy_(0, idx, steps)
                rate = self._correction(self.step_count).index_select(0, steps.long()).mul_(lr)
                step = v.sqrt_().add_(EPSILON).reciprocal_().mul_(m).mul_(rate)
                self.params[n:].index_add_(0, idx, step, alpha=-1.0)
        self.params.grad = None


class WeightEma:
    """The debiased exponential moving average of the weights (tiny-cuda-nn's ``Ema``)."""

    def __init__(self, params: torch.Tensor, decay: float = EMA_DECAY) -> None:
        self.decay = decay
        self.value = torch.zeros_like(params)
        self.count = 0

    def update(self, params: torch.Tensor) -> None:
        with torch.no_grad():
            self.value.mul_(self.decay).add_(params.detach(), alpha=1 - self.decay)
        self.count += 1

    def weights(self, params: torch.Tensor) -> torch.Tensor:
        if self.count == 0:
            return params.detach().clone()
        return self.value / (1 - self.decay**self.count)


__all__ = ["Clock", "FitResult", "TcnnAdam", "WeightEma", "check_budget", "check_device", "huber_ngp", "init_params",
           "learning_rate_at", "psnr_of", "readable"]  # fmt: skip
