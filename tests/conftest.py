"""Shared fixtures: where the real sample files live, a private cache folder, and the built-in
formats registered as the program's entry points do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The shared sample folder: $HOLOSCOPE_SAMPLES, else ``shared/samples`` beside the repository."""
    env = os.environ.get("HOLOSCOPE_SAMPLES")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "samples"
    if not path.is_dir():
        pytest.skip("sample folder not found: set HOLOSCOPE_SAMPLES or place shared/samples beside the repository")
    return path


@pytest.fixture(scope="session")
def bunny(samples_dir: Path) -> Path:
    """The official HNeRV bunny checkpoint (``quant_vid.pth``) from the samples."""
    path = samples_dir / "nerv" / "hnerv-bunny-quant_vid.pth"
    if not path.is_file():
        pytest.skip("the HNeRV bunny checkpoint is not in the sample folder (nerv/hnerv-bunny-quant_vid.pth)")
    return path


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point HOLOSCOPE_CACHE at a temporary folder so tests never write to the user's home."""
    cache = tmp_path_factory.mktemp("holoscope-cache")
    old = os.environ.get("HOLOSCOPE_CACHE")
    os.environ["HOLOSCOPE_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("HOLOSCOPE_CACHE", None)
    else:
        os.environ["HOLOSCOPE_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def _builtin_formats() -> None:
    """The core registry starts empty and ``holoscope.cli.main`` / ``create_window`` fill it;
    tests that call the registry directly get the built-in formats the same way."""
    from holoscope.codecs.builtin import register_builtin_formats

    register_builtin_formats()


@pytest.fixture
def one_torch_thread():
    """Small tensors on a shared machine: one intra-op thread is many times faster (torch's
    threads wait on each other when another process holds a core); restored afterwards. Modules
    use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
