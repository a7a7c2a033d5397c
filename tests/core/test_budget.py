"""The decode budget: parsing, precedence, the default's sources and the refusal message."""

from __future__ import annotations

import sys

import pytest

from holoscope.core import budget
from holoscope.core.errors import BudgetExceeded, HoloscopeError, InvalidArgument
from tests.capped import run_capped


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    budget.set_limit(None)
    yield
    budget.set_limit(None)


@pytest.mark.parametrize("text,expected", [
    ("2G", 2 << 30), ("512M", 512 << 20), ("1.5GiB", int(1.5 * (1 << 30))), ("800MB", 800 << 20),
    ("100000000", 100_000_000), (" 3g ", 3 << 30),
])  # fmt: skip
def test_parse_bytes(text, expected):
    assert budget.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["bogus", "", "1K", "-5G", "1e9", "2X", "5P"])
def test_parse_bytes_refuses_nonsense_and_tiny_budgets(text):
    with pytest.raises(InvalidArgument):
        budget.parse_bytes(text)


def test_precedence_option_then_environment_then_default(monkeypatch):
    default = budget.current()
    assert default.limit >= budget.MIN_BUDGET and default.source != budget.ENV_VAR
    monkeypatch.setenv(budget.ENV_VAR, "300M")
    assert budget.current() == budget.Budget(300 << 20, budget.ENV_VAR)
    budget.set_limit(200 << 20)
    assert budget.current() == budget.Budget(200 << 20, "--max-memory")
    budget.set_limit(None)
    assert budget.current().limit == 300 << 20


def test_require_names_file_need_and_budget():
    budget.set_limit(100 << 20)
    budget.require(99 << 20, what="a little", path="ok.ply")  # under the budget: no error
    with pytest.raises(BudgetExceeded) as err:
        budget.require_splats(10_000_000, 3, path="huge.spz")
    message = str(err.value)
    assert message.startswith("huge.spz: decoding 10,000,000 splats with SH degree 3 needs about")
    assert "100.0 MB memory budget" in message and "--max-memory" in message
    assert isinstance(err.value, MemoryError) and isinstance(err.value, HoloscopeError)


def test_splat_cloud_bytes_matches_a_real_cloud():
    import numpy as np

    from holoscope.core.frames import SplatCloud

    n = 1000
    for degree in range(4):
        k = (degree + 1) ** 2
        cloud = SplatCloud(means=np.zeros((n, 3), np.float32), scales=np.ones((n, 3), np.float32),
                           quats=np.tile(np.float32([1, 0, 0, 0]), (n, 1)), opacities=np.ones(n, np.float32),
                           sh=np.zeros((n, k, 3), np.float32))  # fmt: skip
        held = sum(a.nbytes for a in (cloud.means, cloud.scales, cloud.quats, cloud.opacities, cloud.sh))
        assert budget.splat_cloud_bytes(n, degree) == held


def test_default_follows_the_address_space_limit():
    # A child with a 2 GB address-space cap must get a budget well inside it.
    code = "from holoscope.core import budget; b = budget.current(); print(b.limit, b.source)"
    cap = 2 << 30
    out = run_capped([sys.executable, "-c", code], cap, check=True, timeout=60)
    limit, source = out.stdout.split(maxsplit=1)
    assert 0 < int(limit) < cap * budget.DEFAULT_SHARE
    assert "address-space" in source
