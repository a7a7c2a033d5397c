"""Import of HNeRV training checkpoints (``{'epoch', 'state_dict', 'optimizer'}``, float weights
with the ConvNeXt encoder): ``holoscope convert model.pth out.nerv --video CLIP``. The
checkpoints are written here in the official layout (official parameter names and shapes) from
holoscope's own modules."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from holoscope.cli import main
from tests.nerv_data import read_stream

torch = pytest.importorskip("torch")

from holoscope.codecs.nerv.config import NervConfig  # noqa: E402
from holoscope.codecs.nerv.neural.encoder import ConvNeXtEncoder, layout_from_state  # noqa: E402
from holoscope.codecs.nerv.neural.model import build_decoder, decode, load_state, official_names  # noqa: E402
from holoscope.codecs.nerv.reader import open_nerv  # noqa: E402


def clip(frames: int = 6, width: int = 56, height: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = [np.stack([128 + 100 * np.sin(x / 7 + t), 128 + 100 * np.cos(y / 5 - t), (x + y + 9 * t) % 256], -1)
           for t in range(frames)]  # fmt: skip
    return np.clip(out, 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: np.ndarray, fps: int = 24) -> Path:
    with av.open(str(path), "w") as container:
        s = container.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for picture in frames:
            container.mux(s.encode(av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="bgr0")))
        container.mux(s.encode(None))
    return path


def training_checkpoint(path: Path, strides=(4, 2, 2), height=32, width=48, prefix="", seed=0, **extra):
    """Encoder and decoder with random weights saved as the official train_nerv_all.py does."""
    p = int(np.prod(strides))
    config = NervConfig(family="hnerv", height=height, width=width, frame_count=1, fps=25.0, fc_dim=12, fc_h=1,
                        fc_w=1, strides=strides, kernels=(1, 3, 5, 5, 5)[: len(strides)],
                        channels=(10, 8, 6, 6, 6)[: len(strides)], head_kernel=3, embed_channels=16,
                        embed_h=height // p, embed_w=width // p)  # fmt: skip
    torch.manual_seed(seed)
    encoder, decoder = ConvNeXtEncoder(strides), build_decoder(config)
    with torch.no_grad():  # make the layer scales matter, so a wrong block shows in the embeddings
        for stage in encoder.stages:
            stage[0].gamma.fill_(0.5)
    own = dict(decoder.named_parameters())
    state = {f"{prefix}encoder.{k}": v.detach().clone() for k, v in encoder.state_dict().items()}
    state.update({f"{prefix}{k}": own[v].detach().clone() for k, v in official_names(config).items()})
    state.update(extra)
    torch.save({"epoch": 299, "state_dict": state, "train_best_psnr": torch.tensor(30.0)}, path)
    return config, encoder, decoder


@pytest.mark.parametrize("strides, prefix", [((4, 2, 2), ""), ((2, 2, 2, 2), "module."), ((5, 2), "")])
def test_a_training_checkpoint_imports_with_the_embeddings_its_encoder_computes(tmp_path, strides, prefix, capsys):
    p = int(np.prod(strides))
    height, width = 2 * p, 3 * p
    config, encoder, decoder = training_checkpoint(tmp_path / "model_best.pth", strides, height, width, prefix)
    frames = clip(6, width + 8, height + 6)  # cropped back to the trained size by --crop
    write_clip(tmp_path / "clip.mkv", frames)
    out = tmp_path / "out.nerv"
    assert main(["convert", str(tmp_path / "model_best.pth"), str(out), "--video", str(tmp_path / "clip.mkv"),
                 "--crop", f"{width}x{height}"]) == 0  # fmt: skip
    assert "6 frames" in capsys.readouterr().out
    cropped = frames[:, 3 : 3 + height, 4 : 4 + width]
    x = torch.from_numpy(cropped).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = encoder.eval()(x).numpy()
    got = np.concatenate([c.dequantise() for c in read_stream(out)[2]])
    assert got.shape == want.shape == (6, 16, 2, 3)
    step = (want.max() - want.min()) / 63  # 6-bit embeddings
    np.testing.assert_allclose(got, want, atol=step * 0.51 + 1e-6)
    assert float(np.abs(want - want.mean(0)).max()) > 5 * step  # the frames give different embeddings
    media = open_nerv(out)
    try:
        assert (media.frame_count, media.fps) == (6, 24.0)
        picture = media.frame(3).planes[0]
    finally:
        media.release()
    with torch.inference_mode():
        expected = decode(load_state(build_decoder(config), {k: v for k, v in zip(official_names(config),
                          [dict(decoder.named_parameters())[m] for m in official_names(config).values()])}),
                          torch.from_numpy(want[3:4]))[0]  # fmt: skip
    expected = (expected.permute(1, 2, 0).numpy() * 255).round()
    assert picture.shape == (height, width, 3)
    assert np.abs(picture.astype(np.float64) - expected).mean() < 2.0  # 8-bit weights, 6-bit embeddings


def test_layout_comes_from_the_encoder_shapes_alone():
    encoder = ConvNeXtEncoder((5, 3, 2), dims=(32, 24, 8))
    assert layout_from_state(encoder.state_dict()) == ((5, 3, 2), (32, 24, 8))


def test_what_cannot_be_imported_is_refused_clearly(tmp_path, capsys):
    frames = clip(4, 48, 32)
    video = write_clip(tmp_path / "clip.mkv", frames)
    path = tmp_path / "model.pth"
    training_checkpoint(path)

    def refused(*args: str) -> str:
        assert main(["convert", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("holoscope: error:"), err
        return err

    assert "embeddings" in refused(str(path), str(tmp_path / "a.nerv"))  # no --video
    assert "crop" in refused(str(path), str(tmp_path / "b.nerv"), "--video", str(write_clip(tmp_path / "big.mkv",
                                                                                             clip(4, 52, 32))))  # fmt: skip
    assert "larger than" in refused(str(path), str(tmp_path / "c.nerv"), "--video", str(video), "--crop", "96x32")
    assert "give --video" in refused(str(path), str(tmp_path / "d.nerv"), "--crop", "48x32")
    no_encoder = tmp_path / "decoder-only.pth"
    torch.save({"state_dict": {k: v for k, v in torch.load(path)["state_dict"].items() if not k.startswith("encoder")}},
               no_encoder)  # fmt: skip
    assert "encoder" in refused(str(no_encoder), str(tmp_path / "e.nerv"), "--video", str(video))
    odd = tmp_path / "odd-encoder.pth"
    training_checkpoint(odd, **{"encoder.stages.0.0.extra": torch.zeros(3)})
    assert "ConvNeXt" in refused(str(odd), str(tmp_path / "f.nerv"), "--video", str(video))
    not_nerv = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(8, 3, 7, 7)}}, not_nerv)
    refused(str(not_nerv), str(tmp_path / "g.nerv"), "--video", str(video))
    assert not list(tmp_path.glob("*.nerv")), "a refused import leaves no output"
