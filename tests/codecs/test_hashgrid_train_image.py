"""Image-mode training: a small synthetic image fits, deterministically for a seed, into a
snapshot document that parses and renders to the PSNR reported; pictures read through PyAV
(EXR linear -> sRGB targets, 8-bit sRGB as is, alpha dropped); tiny-cuda-nn's Adam."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
av = pytest.importorskip("av")

from holoscope.codecs.hashgrid.dataset import linear_to_srgb, load_image_target, srgb_to_linear  # noqa: E402
from holoscope.codecs.hashgrid.neural.network import render_image  # noqa: E402
from holoscope.codecs.hashgrid.neural.train_common import TcnnAdam, learning_rate_at  # noqa: E402
from holoscope.codecs.hashgrid.neural.train_image import fit_image, training_positions  # noqa: E402
from holoscope.codecs.hashgrid.snapshot import open_snapshot  # noqa: E402
from holoscope.codecs.hashgrid.writer import SnapshotConfig, write_snapshot  # noqa: E402
from holoscope.core.errors import CorruptStream, FormatNotRecognized, InvalidArgument  # noqa: E402

W, H = 32, 24
SMALL = SnapshotConfig(mode="image", n_levels=8, features=2, log2_table=12, hidden=2)


def synthetic() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x / W, y / H, 0.5 + 0.4 * np.sin(x / 3.0) * np.cos(y / 4.0)], -1).astype(np.float32)


def write_picture(path, data: np.ndarray, codec: str, pix_fmt: str) -> None:
    frame = av.VideoFrame.from_ndarray(data, format=pix_fmt)
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream(codec, rate=1)
        stream.width, stream.height, stream.pix_fmt = data.shape[1], data.shape[0], pix_fmt
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_a_small_image_fits_and_its_document_renders_to_the_reported_psnr(tmp_path):
    image = synthetic()
    notes = []
    result = fit_image(image, config=SMALL, steps=300, batch=1024, seed=0,
                       progress=lambda done, total, note: notes.append((done, total, note)))
    assert result.psnr > 40.0, result.psnr  # a constant colour gives ~11 dB here
    assert result.steps == 300 and result.image_size == (W, H) and result.n_params == SMALL.n_params((W, H))
    assert notes[-1][:2] == (300, 300) and "PSNR" in notes[-1][2] and "loss" in notes[-1][2]
    assert len(result.history) == 300 and result.history[-1][0] == 300
    snap = result.document["snapshot"]
    assert snap["mode"] == "image" and snap["params_type"] == "__half" and snap["training_step"] == 300

    out = tmp_path / "fit.ingp"
    write_snapshot(out, result.document)
    rendered = render_image(open_snapshot(out, image_size=(W, H)), W, H)
    psnr = -10 * math.log10(float(np.mean((rendered.astype(np.float64) - image) ** 2)))
    assert psnr == pytest.approx(result.psnr, abs=1e-6)


def test_training_is_deterministic_for_a_seed():
    image = synthetic()
    a = fit_image(image, config=SMALL, steps=20, batch=256, seed=3)
    b = fit_image(image, config=SMALL, steps=20, batch=256, seed=3)
    c = fit_image(image, config=SMALL, steps=20, batch=256, seed=4)
    assert bytes(a.document["snapshot"]["params_binary"]) == bytes(b.document["snapshot"]["params_binary"])
    assert bytes(a.document["snapshot"]["params_binary"]) != bytes(c.document["snapshot"]["params_binary"])
    plain = fit_image(image, config=SMALL, steps=20, batch=256, seed=3, ema=None)  # the trained weights, not their EMA
    assert bytes(plain.document["snapshot"]["params_binary"]) != bytes(a.document["snapshot"]["params_binary"])


def test_a_time_budget_stops_training_early():
    result = fit_image(synthetic(), config=SMALL, steps=100_000, seconds=1e-6, batch=64)
    assert result.steps < 100_000
    assert math.isfinite(result.psnr)


def test_bad_arguments_are_refused():
    image = synthetic()
    bad = ({"steps": 0}, {"steps": 1, "batch": 0}, {"steps": 1, "seconds": -1.0}, {"steps": 1, "device": "cuda:x"},
           {"steps": 1, "ema": 1.0})
    for kwargs in bad:
        with pytest.raises(InvalidArgument):
            fit_image(image, config=SMALL, **kwargs)
    with pytest.raises(InvalidArgument):
        fit_image(image[..., :2], config=SMALL, steps=1)
    with pytest.raises(InvalidArgument):
        fit_image(np.full_like(image, np.nan), config=SMALL, steps=1)
    with pytest.raises(InvalidArgument):
        fit_image(image, config=SnapshotConfig(), steps=1)  # a NeRF config
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgument, match="CUDA"):
            fit_image(image, config=SMALL, steps=1, device="cuda")


def test_training_positions_are_stratified_pixel_centres():
    gen = torch.Generator().manual_seed(0)
    centres, pixels = training_positions(256, 16, 16, gen, torch.device("cpu"))
    assert sorted(pixels.tolist()) == list(range(256))  # 4^4: one point per 1x1 cell of a 16x16 grid
    xy = torch.stack([pixels % 16, pixels // 16], 1).float()
    assert torch.equal(centres, (xy + 0.5) / 16)
    centres, pixels = training_positions(100, 7, 5, gen, torch.device("cpu"))  # not 4^k: plain uniform
    assert pixels.min() >= 0 and pixels.max() < 35


def test_exr_targets_are_srgb_encoded_and_alpha_is_dropped(tmp_path):
    linear = np.zeros((4, 6, 4), np.float32)
    linear[..., 0], linear[..., 1], linear[..., 2], linear[..., 3] = 0.25, 0.002, 1.0, 0.5
    write_picture(tmp_path / "a.exr", linear, "exr", "gbrapf32le")
    target = load_image_target(tmp_path / "a.exr")
    assert target.shape == (4, 6, 3) and target.dtype == np.float32
    np.testing.assert_allclose(target[0, 0], linear_to_srgb(linear[0, 0, :3]), rtol=1e-6)
    assert target[0, 0, 1] == pytest.approx(12.92 * 0.002)  # the linear toe
    np.testing.assert_allclose(srgb_to_linear(target[0, 0]), linear[0, 0, :3], rtol=1e-5)


def test_eight_bit_pictures_are_already_srgb(tmp_path):
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 128, 255, 7
    write_picture(tmp_path / "a.png", rgba, "png", "rgba")
    target = load_image_target(tmp_path / "a.png")
    np.testing.assert_allclose(target[2, 3], np.array([10, 128, 255]) / 255, rtol=1e-6)


def test_hostile_pictures_are_refused(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a picture at all" * 10)
    with pytest.raises((FormatNotRecognized, CorruptStream)):
        load_image_target(tmp_path / "junk.png")
    nan = np.full((2, 2, 3), np.nan, np.float32)
    write_picture(tmp_path / "nan.exr", nan, "exr", "gbrpf32le")
    with pytest.raises(CorruptStream, match="NaN"):
        load_image_target(tmp_path / "nan.exr")
    with pytest.raises(FileNotFoundError):
        load_image_target(tmp_path / "missing.exr")


def test_adam_leaves_grid_entries_without_gradient_alone():
    params = torch.arange(10, dtype=torch.float32).requires_grad_()
    adam = TcnnAdam(params, n_matrix=4)
    before = params.detach().clone()
    params.grad = torch.tensor([1.0, 0, 0, 0, 1.0, 0, 0, 0, -2.0, 0])
    adam.step()
    changed = (params.detach() != before).tolist()
    # every matrix value moves (L2 regularisation gives 1..3 a gradient), grid values only with one
    assert changed == [True, True, True, True, True, False, False, False, True, False]
    assert adam.grid_steps.tolist() == [1, 0, 0, 0, 1, 0]
    # the first step of Adam moves each value by lr against its gradient's sign
    assert params[4].item() == pytest.approx(4 - 1e-2) and params[8].item() == pytest.approx(8 + 1e-2)
    assert learning_rate_at(19_999) == 1e-2 and learning_rate_at(20_000) == pytest.approx(3.3e-3)
    assert learning_rate_at(30_000) == pytest.approx(1e-2 * 0.33**2)


@pytest.mark.parametrize("config, size, dims", [(SMALL, (40, 30), 2),
                                                (SnapshotConfig(aabb_scale=4, log2_table=12), None, 3)])
def test_the_training_encoding_matches_encode_and_its_gradient(config, size, dims):
    from holoscope.codecs.hashgrid.neural.encoding import encode
    from holoscope.codecs.hashgrid.neural.train_encoding import grid_features

    _, levels, features, _, _ = config.layout(size)
    gen = torch.Generator().manual_seed(0)
    table = (torch.rand(sum(lv.size for lv in levels) * features, generator=gen) * 2 - 1).requires_grad_()
    points = torch.rand(3000, dims, generator=gen)
    reference = encode(points, table, levels, features)
    upstream = torch.randn(reference.shape, generator=gen)
    (reference * upstream).sum().backward()
    expected, table.grad = table.grad.clone(), None
    ours = grid_features(points, table, levels, features)
    (ours * upstream).sum().backward()
    assert torch.equal(ours, reference)
    assert torch.allclose(table.grad, expected, atol=1e-5)
