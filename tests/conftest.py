"""Shared fixtures: where the real sample files live, and a private cache folder."""

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
