"""The error taxonomy: one root type, each subclass also the matching builtin."""

from __future__ import annotations

import pytest

from holoscope.core import errors
from holoscope.core.errors import (
    Cancelled,
    CorruptStream,
    DecoderUnavailable,
    EmptyMedia,
    FormatNotRecognized,
    HoloscopeError,
    InvalidArgument,
    NetworkError,
    NotAFile,
    OutputError,
    SourceNotFound,
    SourceUnreadable,
    BudgetExceeded,
    UnsafeLocation,
)

BUILTIN_FOR = {
    SourceNotFound: FileNotFoundError,
    CorruptStream: ValueError,
    FormatNotRecognized: ValueError,
    InvalidArgument: ValueError,
    EmptyMedia: ValueError,
    NotAFile: IsADirectoryError,
    OutputError: OSError,
    DecoderUnavailable: ImportError,
    SourceUnreadable: PermissionError,
    BudgetExceeded: MemoryError,
    NetworkError: ConnectionError,
    UnsafeLocation: PermissionError,
}


@pytest.mark.parametrize("cls, builtin", list(BUILTIN_FOR.items()), ids=lambda v: getattr(v, "__name__", v))
def test_subclass_is_holoscope_error_and_builtin(cls: type, builtin: type) -> None:
    err = cls("something went wrong", path="/data/scene.ply")
    assert isinstance(err, HoloscopeError)
    assert isinstance(err, builtin)
    # Callers that only know the builtin still catch it.
    with pytest.raises(builtin):
        raise err


def test_every_public_subclass_is_covered() -> None:
    subclasses = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, HoloscopeError) and obj is not HoloscopeError
    }
    assert subclasses == set(BUILTIN_FOR) | {Cancelled}


def test_message_includes_path() -> None:
    err = CorruptStream("truncated data", path="/data/scene.ply")
    assert err.path == "/data/scene.ply"
    assert "/data/scene.ply" in str(err)
    assert "truncated data" in str(err)


def test_path_objects_are_stored_as_strings(tmp_path) -> None:
    err = SourceNotFound("no such file", path=tmp_path / "x.ply")
    assert err.path == str(tmp_path / "x.ply")
    assert str(tmp_path / "x.ply") in str(err)


def test_message_without_path() -> None:
    err = InvalidArgument("bad size")
    assert err.path is None
    assert str(err) == "bad size"


def test_cancelled_is_a_holoscope_error_only() -> None:
    err = Cancelled("stopped by the user")
    assert isinstance(err, HoloscopeError)
    assert not isinstance(err, (ValueError, OSError))
