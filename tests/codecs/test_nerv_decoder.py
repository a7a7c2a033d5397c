"""NeRV-family decoders (issue 10, first part): config, shape inference, import of the official
HNeRV checkpoint layout, and the decoder's output against the reference PSNRs."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from holoscope.codecs.nerv.config import NervConfig, hnerv_from_shapes, nerv_from_shapes
from holoscope.core.errors import CorruptStream, FormatNotRecognized, HoloscopeError, InvalidArgument

torch = pytest.importorskip("torch")

from holoscope.codecs.nerv.neural.checkpoint import load_official, open_decoder  # noqa: E402
from holoscope.codecs.nerv.neural.model import build_decoder, decode, frame_times, load_state, official_names  # noqa: E402

BUNNY_PSNR = {1: 32.895, 61: 32.320, 132: 33.643}  # float output against rows 40..679 (nerv.md §6)


# -- helpers -----------------------------------------------------------------------------------


def hnerv(**changes) -> NervConfig:
    base = dict(family="hnerv", height=32, width=48, frame_count=5, fps=25.0, fc_dim=12, fc_h=1, fc_w=1,
                strides=(4, 2, 2), kernels=(1, 3, 5), channels=(10, 8, 6), head_kernel=3,
                embed_channels=16, embed_h=2, embed_w=3)  # fmt: skip
    base.update(changes)
    return NervConfig(**base)


def nerv(**changes) -> NervConfig:
    base = dict(family="nerv", height=36, width=64, frame_count=7, fps=30.0, fc_dim=10, fc_h=9, fc_w=16,
                strides=(2, 2), kernels=(3, 3), channels=(8, 6), head_kernel=1, pe_base=1.25, pe_levels=8,
                stem_dims=(32,))  # fmt: skip
    base.update(changes)
    return NervConfig(**base)


def quantise(t: torch.Tensor, bits: int, axis: int | None = None) -> dict:
    """A simple affine quantiser in the official layout: per tensor (fp32 scalars) or with one
    axis kept (fp16 side values of the same rank)."""
    if axis is None:
        lo, hi = t.min(), t.max()
    else:
        dims = [d for d in range(t.ndim) if d != axis]
        lo, hi = t.amin(dim=dims, keepdim=True).half(), t.amax(dim=dims, keepdim=True).half()
    scale = (hi.float() - lo.float()) / (2**bits - 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale)).to(lo.dtype)
    q = ((t - lo.float()) / scale.float()).round().clamp(0, 2**bits - 1).to(torch.uint8)
    return {"quant": q, "min": lo, "scale": scale}


def dequantise(q: dict) -> torch.Tensor:
    return q["min"].float() + q["scale"].float() * q["quant"].float()


def write_compressed(config: NervConfig, path: Path, seed: int = 0):
    """A random decoder saved like HNeRV's quant_vid.pth; returns (module, dequantised weights,
    dequantised embeddings or None)."""
    torch.manual_seed(seed)
    module = build_decoder(config)
    own = dict(module.named_parameters())
    model, weights = {}, {}
    for official, mine in official_names(config).items():
        value = own[mine].detach().clone()
        q = quantise(value, 8, axis=0 if value.ndim == 4 and value.shape[0] > 2 else None)
        model[official] = q
        weights[official] = dequantise(q)
    saved = {"model": model}
    embeddings = None
    if config.family == "hnerv":
        e = torch.randn(config.embedding_shape())
        saved["embed"] = quantise(e, 6)
        embeddings = dequantise(saved["embed"])
    torch.save(saved, path)
    return module, weights, embeddings


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float(((a.double() - b.double()) ** 2).mean()))


# -- the official bunny checkpoint -------------------------------------------------------------


def test_bunny_checkpoint_imports_with_the_expected_architecture(bunny: Path):
    config, weights, embeddings, info = load_official(bunny, fps=24.0)
    assert config.family == "hnerv"
    assert config.strides == (5, 4, 4, 2, 2)
    assert config.kernels == (1, 3, 5, 5, 5)
    assert config.channels == (57, 48, 40, 33, 28)
    assert config.fc_dim == 68 and (config.fc_h, config.fc_w) == (1, 1)
    assert (config.height, config.width, config.frame_count) == (640, 1280, 132)
    assert (config.embed_channels, config.embed_h, config.embed_w) == (16, 2, 4)
    assert config.parameter_count() == 1_488_276
    assert sum(w.numel() for w in weights.values()) == 1_488_276
    assert all(w.dtype == torch.float32 for w in weights.values())
    assert embeddings.shape == (132, 16, 2, 4) and embeddings.dtype == torch.float32
    assert (info.weight_codes, info.embed_codes, info.side_values) == (1_488_276, 16_896, 23_028)
    assert (info.weight_bits, info.embed_bits) == (8, 6)
    assert NervConfig.from_json(config.to_json()) == config


def test_bunny_frames_match_the_reference_psnr(bunny: Path):
    from PIL import Image

    frames = list(BUNNY_PSNR)
    pngs = [bunny.parent / f"bunny-{n:04d}.png" for n in frames]
    if not all(p.is_file() for p in pngs):
        pytest.skip("the bunny ground-truth frames are not in the sample folder")
    module, embeddings, config = open_decoder(bunny)
    out = decode(module, embeddings[[n - 1 for n in frames]], batch=3, device="cpu", dtype=torch.float32)
    assert out.shape == (3, 3, 640, 1280) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    for i, (n, png) in enumerate(zip(frames, pngs)):
        rgb = np.asarray(Image.open(png).convert("RGB"))[40:680]
        truth = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)
        assert psnr(out[i], truth) == pytest.approx(BUNNY_PSNR[n], abs=0.05), n


# -- round trips through the official layout -----------------------------------------------------

ARCHITECTURES = {
    "hnerv 4,2,2": hnerv(),
    "hnerv 5,3,2,2,2": hnerv(height=120, width=240, embed_h=1, embed_w=2, strides=(5, 3, 2, 2, 2),
                             kernels=(1, 3, 5, 5, 5), channels=(8, 7, 6, 5, 4), fc_dim=9),  # fmt: skip
    "hnerv 4,3,2 k3 fc 2x2": hnerv(height=96, width=144, fc_h=2, fc_w=2, embed_h=2, embed_w=3, strides=(4, 3, 2),
                                   kernels=(3, 3, 3), channels=(7, 6, 5), fc_dim=6, head_kernel=1,
                                   output="sigmoid", activation="relu"),  # fmt: skip
    "hnerv stride 1": hnerv(height=16, width=24, strides=(4, 1, 2), embed_h=2, embed_w=3),
    "nerv 2,2": nerv(),
    "nerv 3,2 square": nerv(height=24, width=24, fc_h=4, fc_w=4, strides=(3, 2), stem_dims=(24, 20), pe_levels=5,
                            output="sigmoid"),  # fmt: skip
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_round_trip_through_the_official_compressed_layout(name: str, tmp_path: Path):
    config = ARCHITECTURES[name]
    path = tmp_path / "quant_vid.pth"
    original, weights, embeddings = write_compressed(config, path)
    options = dict(fps=config.fps, activation=config.activation, out=config.output)
    if config.family == "nerv":
        options.update(frame_count=config.frame_count, fc_hw=(config.fc_h, config.fc_w), pe_base=config.pe_base)
    got, got_weights, got_embeddings, info = load_official(path, **options)
    assert got == config
    assert got.parameter_count() == sum(p.numel() for p in original.parameters())
    assert set(got_weights) == set(weights)
    for key, value in weights.items():
        torch.testing.assert_close(got_weights[key], value, rtol=0, atol=1e-6)
    module = load_state(build_decoder(got), got_weights)
    if config.family == "hnerv":
        torch.testing.assert_close(got_embeddings, embeddings, rtol=0, atol=1e-6)
        inputs = got_embeddings
        assert info.embed_bits <= 6 and info.weight_bits <= 8
    else:
        assert got_embeddings is None
        inputs = frame_times(range(config.frame_count), config.frame_count)
    out = decode(module, inputs, batch=2)
    assert out.shape == (inputs.shape[0], 3, config.height, config.width)
    # The same weights in a directly built module give the same pictures ...
    direct = load_state(build_decoder(config), weights)
    torch.testing.assert_close(out, decode(direct, inputs, batch=3), rtol=0, atol=1e-5)
    # ... and the float original differs only by the quantisation.
    if config.family == "hnerv":
        reference = decode(original, inputs)
        assert float((out - reference).abs().max()) < 0.1
        assert psnr(out, reference) > 25


def test_training_checkpoint_gives_weights_and_config_but_no_embeddings(tmp_path: Path):
    config = hnerv()
    module = build_decoder(config)
    own = dict(module.named_parameters())
    state = {f"module.{k}": own[v].detach().clone() for k, v in official_names(config).items()}
    state["module.encoder.stem.0.weight"] = torch.zeros(4, 3, 5, 5)
    path = tmp_path / "model_best.pth"
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {}}, path)
    with pytest.raises(InvalidArgument, match="embeddings"):
        load_official(path)
    got, weights, embeddings, info = load_official(path, fps=25.0, embed_shape=(5, 16, 2, 3))
    assert got == config and embeddings is None and info is None
    rebuilt = load_state(build_decoder(got), weights)
    e = torch.randn(2, 16, 2, 3)
    torch.testing.assert_close(decode(rebuilt, e), decode(module, e), rtol=0, atol=1e-6)


def test_nerv_positional_encoding_is_interleaved_sin_cos():
    config = nerv(pe_levels=3)
    module = build_decoder(config)
    t = torch.tensor([0.25])
    pe = module.encode_time(t)[0]
    expected = []
    for i in range(3):
        v = 0.25 * 1.25**i * math.pi
        expected += [math.sin(v), math.cos(v)]
    torch.testing.assert_close(pe, torch.tensor(expected), rtol=0, atol=1e-6)


# -- config -------------------------------------------------------------------------------------


def test_config_json_round_trip_and_strict_validation():
    for config in ARCHITECTURES.values():
        assert NervConfig.from_json(config.to_json()) == config
        assert NervConfig.from_json(config.to_json().encode()) == config
    good = json.loads(hnerv().to_json())
    bad = {
        "not JSON": "{",
        "not an object": "[1, 2]",
        "unknown field": {**good, "norm": "bn"},
        "missing field": {k: v for k, v in good.items() if k != "fc_dim"},
        "bool for int": {**good, "fc_dim": True},
        "float for int": {**good, "height": 32.0},
        "product": {**good, "height": 33},
        "even kernel": {**good, "kernels": [1, 2, 5]},
        "block count": {**good, "channels": [10, 8]},
        "family": {**good, "family": "hinerv"},
        "activation": {**good, "activation": "tanh"},
        "output": {**good, "output": "linear"},
        "fps": {**good, "fps": float("nan")},
        "version": {**good, "version": 2},
        "stride string": {**good, "strides": "4,2,2"},
        "huge": {**good, "channels": [8192, 8192, 8192], "fc_dim": 8192},
    }
    for what, data in bad.items():
        text = data if isinstance(data, str) else json.dumps(data)
        with pytest.raises(CorruptStream) as info:
            NervConfig.from_json(text, path="clip.nerv")
        assert "clip.nerv" in str(info.value) and "\n" not in str(info.value), what
    with pytest.raises(InvalidArgument, match="not the stated output"):
        hnerv(width=50)
    with pytest.raises(InvalidArgument, match="one entry per block"):
        hnerv(kernels=(1, 3))


def test_parameter_count_matches_the_module():
    for config in ARCHITECTURES.values():
        assert config.parameter_count() == sum(p.numel() for p in build_decoder(config).parameters())


def _hnerv_shapes(config: NervConfig) -> dict[str, tuple[int, ...]]:
    module = build_decoder(config)
    own = dict(module.named_parameters())
    shapes = {k: tuple(own[v].shape) for k, v in official_names(config).items()}
    shapes["embed"] = config.embedding_shape()
    return shapes


def test_shape_inference_sorts_blocks_numerically():
    config = hnerv(height=2 * 2**10, width=3 * 2**10, strides=(2,) * 10, kernels=(3,) * 10, channels=(4,) * 10)
    shapes = _hnerv_shapes(config)
    shuffled = dict(sorted(shapes.items()))  # lexical order: decoder.10 before decoder.2
    assert hnerv_from_shapes(shuffled, fps=25.0) == config


def test_shape_inference_rejects_what_is_not_hnerv():
    shapes = _hnerv_shapes(hnerv())
    cases = {
        "non-integer stride": {**shapes, "decoder.2.conv.upconv.0.weight": (7 * 8, 10, 3, 3),
                               "decoder.2.conv.upconv.0.bias": (56,)},  # fmt: skip
        "gap in blocks": {k: v for k, v in shapes.items() if not k.startswith("decoder.2.")},
        "no head": {k: v for k, v in shapes.items() if not k.startswith("head_layer")},
        "norm layer": {**shapes, "decoder.1.norm.weight": (10,)},
        "missing bias": {k: v for k, v in shapes.items() if k != "decoder.3.conv.upconv.0.bias"},
        "rectangular kernel": {**shapes, "decoder.1.conv.upconv.0.weight": (160, 12, 1, 3)},
        "embed channels": {**shapes, "embed": (5, 8, 2, 3)},
        "stem not 1x1": {**shapes, "decoder.0.conv.downconv.weight": (12, 16, 3, 3)},
    }
    for what, bad in cases.items():
        with pytest.raises(CorruptStream) as info:
            hnerv_from_shapes(bad, fps=25.0, path="x.pth")
        message = str(info.value)
        assert message.startswith("x.pth: not") and "\n" not in message, (what, message)


def test_nerv_shape_inference_needs_the_grid_when_ambiguous():
    config = nerv(height=12, width=20, fc_h=3, fc_w=5)
    module = build_decoder(config)
    own = dict(module.named_parameters())
    shapes = {k: tuple(own[v].shape) for k, v in official_names(config).items()}
    with pytest.raises(InvalidArgument, match="fc_hw"):
        nerv_from_shapes(shapes, fps=30.0, frame_count=7)
    assert nerv_from_shapes(shapes, fps=30.0, frame_count=7, fc_hw=(3, 5)) == config


# -- hostile files ------------------------------------------------------------------------------


class NotATensor:
    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _one_clear_error(path: Path, kind: type[HoloscopeError], **options) -> str:
    with pytest.raises(kind) as info:
        load_official(path, **options)
    message = str(info.value)
    assert path.name in message and "\n" not in message and len(message) < 400, message
    return message


def test_bad_files_give_one_clear_error(tmp_path: Path):
    good = tmp_path / "good.pth"
    write_compressed(hnerv(), good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    _one_clear_error(truncated, CorruptStream)

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    _one_clear_error(empty, CorruptStream)

    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _one_clear_error(noise, FormatNotRecognized)

    raw_pickle = tmp_path / "raw-pickle.pth"
    raw_pickle.write_bytes(pickle.dumps({"model": NotATensor()}, protocol=4))
    _one_clear_error(raw_pickle, CorruptStream)

    custom = tmp_path / "custom-object.pth"
    torch.save({"model": {"decoder.0.conv.downconv.weight": NotATensor()}}, custom)
    assert "NotATensor" in _one_clear_error(custom, CorruptStream)

    wrong_keys = tmp_path / "wrong-keys.pth"
    torch.save({"weights": torch.zeros(3), "bias": torch.ones(2)}, wrong_keys)
    _one_clear_error(wrong_keys, FormatNotRecognized)

    a_list = tmp_path / "a-list.pth"
    torch.save([torch.zeros(3)], a_list)
    _one_clear_error(a_list, FormatNotRecognized)

    saved = torch.load(good, weights_only=True)
    q = saved["model"]["decoder.2.conv.upconv.0.weight"]
    saved["model"]["decoder.2.conv.upconv.0.weight"] = quantise(torch.randn(7 * 8, 10, 3, 3), 8)
    saved["model"]["decoder.2.conv.upconv.0.bias"] = quantise(torch.randn(56), 8)
    odd_stride = tmp_path / "odd-stride.pth"
    torch.save(saved, odd_stride)
    assert "stride" in _one_clear_error(odd_stride, CorruptStream)

    saved["model"]["decoder.2.conv.upconv.0.weight"] = {"quant": q["quant"].float(), "min": q["min"], "scale": q["scale"]}
    float_codes = tmp_path / "float-codes.pth"
    torch.save(saved, float_codes)
    _one_clear_error(float_codes, CorruptStream)

    saved["model"]["decoder.2.conv.upconv.0.weight"] = {"quant": q["quant"], "min": torch.zeros(3, 1, 1, 1),
                                                        "scale": q["scale"]}  # fmt: skip
    side_shape = tmp_path / "side-shape.pth"
    torch.save(saved, side_shape)
    _one_clear_error(side_shape, CorruptStream)

    saved = torch.load(good, weights_only=True)
    saved["model"]["head_layer.weight"]["scale"] = torch.tensor(float("inf"))
    non_finite = tmp_path / "non-finite.pth"
    torch.save(saved, non_finite)
    _one_clear_error(non_finite, CorruptStream)


def test_bad_bunny_truncations(bunny: Path, tmp_path: Path):
    data = bunny.read_bytes()
    for cut in (100, len(data) // 3, len(data) - 50):
        path = tmp_path / f"bunny-{cut}.pth"
        path.write_bytes(data[:cut])
        _one_clear_error(path, CorruptStream)


def test_oversized_and_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from holoscope.codecs.nerv.neural import checkpoint
    from holoscope.core.errors import NotAFile, SourceNotFound

    path = tmp_path / "big.pth"
    write_compressed(hnerv(), path)
    monkeypatch.setattr(checkpoint, "MAX_FILE_BYTES", 1000)
    _one_clear_error(path, FormatNotRecognized)
    with pytest.raises(SourceNotFound):
        load_official(tmp_path / "missing.pth")
    with pytest.raises(NotAFile):
        load_official(tmp_path)


def test_decode_checks_its_inputs():
    config = hnerv()
    module = build_decoder(config)
    with pytest.raises(InvalidArgument):
        decode(module, torch.zeros(2, 16, 3, 3))
    with pytest.raises(InvalidArgument):
        decode(module, torch.zeros(2, 16, 2, 3), batch=0)
    with pytest.raises(CorruptStream, match="shape"):
        weights = {k: torch.zeros(1) for k in official_names(config)}
        load_state(module, weights)


def test_config_and_checkpoint_modules_do_not_import_torch_until_called():
    code = (
        "import sys\n"
        "import holoscope.codecs.nerv.config, holoscope.codecs.nerv.neural.checkpoint\n"
        "assert 'torch' not in sys.modules, 'torch imported at module level'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the fast CPU path (channels-last, bf16 blocks where the CPU has them) ------------------------


@pytest.mark.parametrize("name", ["hnerv 5,3,2,2,2", "hnerv 4,3,2 k3 fc 2x2", "nerv"])
@pytest.mark.parametrize("bf16", [False, True])
def test_fast_path_stays_within_a_tight_bound_of_fp32(name: str, bf16: bool, monkeypatch: pytest.MonkeyPatch):
    from holoscope.codecs.nerv.neural.model import is_prepared, prepare

    monkeypatch.delenv("HOLOSCOPE_NERV_FP32", raising=False)
    config = nerv() if name == "nerv" else ARCHITECTURES[name]
    torch.manual_seed(3)
    module = build_decoder(config).eval()
    if config.family == "hnerv":
        inputs = torch.randn(3, *config.embedding_shape()[1:])
    else:
        inputs = frame_times([0, 2, 5], config.frame_count)
    ref = decode(module, inputs, batch=2)
    fast = prepare(module, "cpu", bf16=bf16)
    assert is_prepared(fast) and fast is not module and not is_prepared(module)
    assert all(p.dtype == torch.float32 for p in module.parameters())  # the original is untouched
    assert fast.blocks[0].weight.dtype == (torch.bfloat16 if bf16 else torch.float32)
    assert fast.head.weight.dtype == torch.float32
    out = decode(fast, inputs, batch=2)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    err = (out - ref).abs()
    if bf16:  # bf16 blocks: well under one 8-bit level on average, a few levels at worst
        assert float(err.mean()) < 1e-3 and float(err.max()) < 2e-2
        assert psnr(out, ref) > 50.0
    else:  # channels-last alone only reorders the sums
        assert float(err.max()) < 1e-5
    # decode(fast=True) prepares a copy itself and gives the same frames
    assert torch.equal(decode(module, inputs, batch=2, fast=True), decode(prepare(module), inputs, batch=2))


def test_fast_path_env_switch_and_other_devices(monkeypatch: pytest.MonkeyPatch):
    from holoscope.codecs.nerv.neural.model import is_prepared, prepare

    module = build_decoder(hnerv()).eval()
    monkeypatch.setenv("HOLOSCOPE_NERV_FP32", "1")
    assert prepare(module) is module and not is_prepared(module)
    monkeypatch.setenv("HOLOSCOPE_NERV_FP32", "0")
    assert is_prepared(prepare(module))
    monkeypatch.delenv("HOLOSCOPE_NERV_FP32")
    assert prepare(module, "meta") is module  # only the CPU and CUDA have a fast path


@pytest.mark.parametrize("name", ["hnerv 5,3,2,2,2", "nerv"])
def test_fp16_blocks_as_on_a_gpu_stay_close_to_fp32(name: str, monkeypatch: pytest.MonkeyPatch):
    """The CUDA fast path's precision mix (fp16 blocks between fp32 ends), run on the CPU."""
    from holoscope.codecs.nerv.neural.model import prepare

    monkeypatch.delenv("HOLOSCOPE_NERV_FP32", raising=False)
    config = nerv() if name == "nerv" else ARCHITECTURES[name]
    torch.manual_seed(4)
    module = build_decoder(config).eval()
    inputs = torch.randn(2, *config.embedding_shape()[1:]) if config.family == "hnerv" else frame_times([1, 4], 7)
    fast = prepare(module, "cpu", blocks_dtype=torch.float16)
    assert fast.fast == "fp16" and fast.blocks[-1].weight.dtype == torch.float16
    assert fast.head.weight.dtype == torch.float32
    out, ref = decode(fast, inputs, batch=2), decode(module, inputs, batch=2)
    assert out.dtype == torch.float32 and psnr(out, ref) > 55.0  # fp16 keeps 3 more bits than bf16


def test_the_decode_device_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch):
    from holoscope.codecs.nerv.neural.player import DEVICE_ENV, NervDecoder, decode_device

    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert decode_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert decode_device() == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "abacus")
    with pytest.raises(InvalidArgument, match="not a torch device"):
        decode_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(InvalidArgument, match="no CUDA"):
            decode_device()
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    config = hnerv()
    module = build_decoder(config)
    from holoscope.codecs.nerv import stream

    weights = {k: stream.quantise(dict(module.named_parameters())[v].detach().numpy(), 8)
               for k, v in official_names(config).items()}  # fmt: skip
    decoder = NervDecoder(config, weights)
    assert decoder.path.startswith("torch cpu (") and decoder.decode(np.zeros((16, 2, 3), np.float32)).shape == (32, 48, 3)
