"""NeRV (positional-encoding input, no embeddings) as .nerv streams: import of NeRV checkpoints in
the official layout (training state dicts and the compressed layout), playback from frame times,
seeking, and the header rules that keep the two families apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from holoscope.cli import main
from holoscope.codecs.nerv import stream
from holoscope.core.errors import CorruptStream, InvalidArgument
from tests.nerv_data import repack

torch = pytest.importorskip("torch")

from holoscope.codecs.nerv.config import NervConfig  # noqa: E402
from holoscope.codecs.nerv.neural.model import build_decoder, decode, frame_times, official_names  # noqa: E402
from holoscope.codecs.nerv.reader import open_nerv  # noqa: E402

FRAMES = 7


def nerv_config(**changes) -> NervConfig:
    base = dict(family="nerv", height=36, width=64, frame_count=FRAMES, fps=30.0, fc_dim=10, fc_h=9, fc_w=16,
                strides=(2, 2), kernels=(3, 3), channels=(8, 6), head_kernel=1, pe_base=1.25, pe_levels=8,
                stem_dims=(32,))  # fmt: skip
    base.update(changes)
    return NervConfig(**base)


def official_state(config: NervConfig, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(seed)
    module = build_decoder(config).eval()
    with torch.no_grad():  # a strong first layer: frame times then give clearly different pictures
        module.mlp[0].weight.mul_(8)
    own = dict(module.named_parameters())
    return module, {k: own[v].detach().clone() for k, v in official_names(config).items()}


def decoded(path: Path) -> np.ndarray:
    media = open_nerv(path)
    try:
        return np.stack([media.frame(i).planes[0] for i in range(media.frame_count)])
    finally:
        media.release()


def expected_frames(module: torch.nn.Module) -> np.ndarray:
    out = decode(module, frame_times(range(FRAMES), FRAMES), batch=3)
    return (out.permute(0, 2, 3, 1).numpy() * 255).round()


def test_a_nerv_training_checkpoint_imports_and_plays_from_frame_times(tmp_path, capsys):
    config = nerv_config()
    module, state = official_state(config)
    torch.save({"epoch": 300, "state_dict": state, "train_best_psnr": 30.0}, tmp_path / "model_latest.pth")
    out = tmp_path / "nerv.nerv"
    assert main(["convert", str(tmp_path / "model_latest.pth"), str(out), "--frame-count", str(FRAMES),
                 "--fps", "30", "--act", "gelu", "--out-bias", "tanh"]) == 0  # fmt: skip
    assert f"{FRAMES} frames 64x36" in capsys.readouterr().out
    frames = decoded(out)
    want = expected_frames(module)
    assert frames.shape == (FRAMES, 36, 64, 3)
    assert np.abs(frames - want).mean() < 1.0  # 8-bit weights: under one level on average
    assert np.abs(frames[0].astype(float) - frames[-1]).mean() > 2, "frame times give different pictures"
    for i in range(FRAMES):  # each frame is its own time's picture, not a neighbour's
        errors = [np.abs(frames[i] - want[j]).mean() for j in range(FRAMES)]
        assert int(np.argmin(errors)) == i, errors
    media = open_nerv(out)
    try:
        assert media.info["family"] == "nerv" and media.info["embedding_chunks"] == 0
        seek = next(iter(media.frames_from(5)))
        assert seek.index == 5 and np.array_equal(seek.payload.planes[0], frames[5])
    finally:
        media.release()
    assert main(["info", str(out), "--json"]) == 0
    assert '"family": "nerv"' in capsys.readouterr().out


def test_a_compressed_nerv_checkpoint_keeps_its_codes(tmp_path):
    config = nerv_config(fc_h=4, fc_w=4, height=16, width=16, pe_levels=5, stem_dims=(24, 20), output="sigmoid")
    module, state = official_state(config, seed=2)
    model = {}
    for name, value in state.items():
        q = stream.quantise(value.numpy(), 8)
        model[name] = {"quant": torch.from_numpy(q.codes.astype(np.uint8)),
                       "min": torch.from_numpy(np.asarray(q.minimum)), "scale": torch.from_numpy(np.asarray(q.scale))}  # fmt: skip
    torch.save({"model": model}, tmp_path / "quant.pth")
    out = tmp_path / "q.nerv"
    assert main(["convert", str(tmp_path / "quant.pth"), str(out), "--frame-count", str(FRAMES), "--fc-hw", "4_4",
                 "--out-bias", "sigmoid", "-q"]) == 0  # fmt: skip
    source = stream.parse_header(out.read_bytes()[:65536], out)
    assert source.embedding is None and source.chunks == []
    from holoscope.core.sources import FileSource

    weights, affine = stream.unpack_weights(stream.read_chunk(FileSource(out), source.weights, out, "w"), source)
    assert affine is None
    for name, q in model.items():
        np.testing.assert_array_equal(weights[name].codes, q["quant"].numpy())
    frames = decoded(out)
    assert frames.shape == (FRAMES, 16, 16, 3) and np.abs(frames - expected_frames(module)).mean() < 1.0


def test_what_nerv_import_needs_is_asked_for(tmp_path, capsys):
    config = nerv_config(fc_h=5, fc_w=6, height=20, width=24)
    _, state = official_state(config)
    torch.save({"state_dict": state}, tmp_path / "m.pth")
    for extra, needle in (((), "--frame-count"), (("--frame-count", "7"), "--fc-hw"),
                          (("--frame-count", "7", "--fc-hw", "6_6"), "fc_hw"), (("--frame-count", "7", "--fc-hw", "a"), "--fc-hw")):  # fmt: skip
        assert main(["convert", str(tmp_path / "m.pth"), str(tmp_path / "o.nerv"), *extra]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.nerv").exists()
    assert main(["convert", str(tmp_path / "m.pth"), str(tmp_path / "o.nerv"), "--frame-count", "7", "--fc-hw", "5x6",
                 "-q"]) == 0  # fmt: skip
    assert decoded(tmp_path / "o.nerv").shape == (7, 20, 24, 3)


def test_families_and_embeddings_must_agree(tmp_path):
    config = nerv_config()
    _, state = official_state(config)
    weights = {k: stream.quantise(v.numpy(), 8) for k, v in state.items()}
    path = tmp_path / "n.nerv"
    stream.write_nerv(path, config.to_dict(), weights, None, fps=30, frames=FRAMES)
    decoded(path)  # intact: plays
    hnerv = dict(config.to_dict(), family="hnerv")
    repack(path, lambda h: h.update(config=hnerv))
    with pytest.raises(CorruptStream):
        open_nerv(path)
    with pytest.raises(InvalidArgument, match="at least one frame"):  # no embeddings: the count is needed
        stream.write_nerv(tmp_path / "x.nerv", config.to_dict(), weights, None, fps=30)
