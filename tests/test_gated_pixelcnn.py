"""The Gated PixelCNN: causal with every option, free of PixelCNN's blind spot, cached sampling
equal to naive, and a fourth architecture everywhere (CLI, checkpoints, evaluate, sample)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pixelrnn_utils.causality import assert_causal, blind_pixels, dependency_map
from pixelrnn_utils.cli import main
from pixelrnn_utils.gated_pixelcnn import VerticalConv2d, gated
from pixelrnn_utils.model import GatedPixelCNN, PixelRNN, build_model
from pixelrnn_utils.sampling import sample

OPTIONS = [
    (3, {}),
    (1, {"levels": 2, "skip": True}),
    (3, {"classes": 3, "levels": 4}),
    (1, {"kernel_size": 5, "residual": False}),
]  # Multi-Scale's two-stage order: tests/test_multiscale.py, with every architecture


def _model(channels=3, **options):
    torch.manual_seed(0)
    return build_model("gated_pixelcnn", channels, hidden=4, layers=2, **options)


@pytest.mark.parametrize(("channels", "options"), OPTIONS, ids=str)
def test_causal_with_every_option(channels, options):
    model = _model(channels, **options)
    condition = torch.tensor(2) if "classes" in options else None
    assert_causal(model, (channels, 5, 5), condition=condition)


def test_vertical_convolution_sees_the_rows_above_and_nothing_else():
    torch.manual_seed(0)
    for include, rows in ((True, range(3, 6)), (False, range(3, 5))):
        conv = VerticalConv2d(1, 1, 5, include_centre_row=include).double()
        x = torch.zeros(1, 1, 9, 9, dtype=torch.double, requires_grad=True)
        conv(x)[0, 0, 5, 4].backward()
        seen = x.grad[0, 0] != 0
        expected = torch.zeros(9, 9, dtype=torch.bool)
        expected[rows.start : rows.stop, 2:7] = True  # rows i - 2 .. i (- 1), columns j +- 2
        assert torch.equal(seen, expected), include
        # on rows a .. b of a map its last output row is the whole map's row b (the cache's use)
        full = conv(x.detach())
        x2 = torch.randn(1, 1, 9, 9, dtype=torch.double)
        torch.testing.assert_close(conv(x2[:, :, 3:6])[:, :, -1], conv(x2)[:, :, 5])
        assert full.shape == x.shape


def test_gated_activation_is_tanh_times_sigmoid():
    x = torch.randn(2, 6, 3, 3)
    torch.testing.assert_close(gated(x), torch.tanh(x[:, :3]) * torch.sigmoid(x[:, 3:]))


def _blind_pixels(dep: torch.Tensor) -> int:
    """Earlier pixels inside an output's reach that do not reach it, summed over every output."""
    _, H, W = dep.shape[:3]
    return sum(int(blind_pixels(dep, i, j).sum()) for i in range(H) for j in range(W))


def test_no_blind_spot_where_pixelcnn_has_one():
    """Within its receptive field every earlier pixel reaches a Gated PixelCNN output; PixelCNN
    of the same depth misses the triangle to the upper right (notebook 02)."""
    shape = (1, 16, 16)
    blind = {}
    for arch in ("pixelcnn", "gated_pixelcnn"):
        torch.manual_seed(0)
        model = build_model(arch, 1, hidden=4, layers=4)
        dep = dependency_map(model, shape)
        blind[arch] = _blind_pixels(dep)
        field = dep[0, 12, 6].any(0)
        # one row up, four columns right: in PixelCNN's blind triangle
        assert field[12 - 1, 6 + 4] == (arch == "gated_pixelcnn"), arch
    assert blind["gated_pixelcnn"] == 0
    assert blind["pixelcnn"] > 100


@pytest.mark.parametrize(
    ("channels", "shape", "options"),
    [
        (3, (3, 4, 5), {}),
        (1, (1, 6, 5), {"levels": 2, "skip": True}),
        (1, (1, 5, 4), {"kernel_size": 5, "layers": 3}),
        (3, (3, 4, 4), {"levels": 4, "residual": False}),
    ],
    ids=str,
)
def test_cached_equals_naive(channels, shape, options):
    layers = options.pop("layers", 2)
    torch.manual_seed(0)
    model = build_model("gated_pixelcnn", channels, hidden=4, layers=layers, **options)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    naive = sample(model, 3, shape, "naive", generator=gen())
    cached = sample(model, 3, shape, "cached", generator=gen())
    assert torch.equal(naive, cached) and naive.max() < model.levels
    assert len({tuple(img.flatten().tolist()) for img in naive}) == 3


def test_cached_equals_naive_with_a_class_and_a_completion():
    model = _model(1, classes=3, levels=4)
    gen = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    labels = torch.tensor([0, 2, 1])
    a = sample(model, 3, (1, 5, 5), "naive", generator=gen(), condition=labels)
    b = sample(model, 3, (1, 5, 5), "cached", generator=gen(), condition=labels)
    assert torch.equal(a, b)
    known = torch.randint(0, 4, (1, 1, 5, 5), generator=gen())
    mask = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    mask[:, :, :2] = True
    mask[:, :, 2, :2] = True
    a = sample(
        model, 3, (1, 5, 5), "naive", generator=gen(), condition=labels, prefix=(known, mask)
    )
    b = sample(
        model, 3, (1, 5, 5), "cached", generator=gen(), condition=labels, prefix=(known, mask)
    )
    assert torch.equal(a, b) and torch.equal(a[:, mask[0]], known[:, mask[0]].expand(3, -1))


def test_built_only_as_a_gated_pixelcnn():
    assert isinstance(_model(), GatedPixelCNN)
    with pytest.raises(ValueError, match="build_model\\('gated_pixelcnn'"):
        PixelRNN("gated_pixelcnn", 3, hidden=4, layers=1)
    with pytest.raises(ValueError, match="learned_initial_state"):
        build_model("gated_pixelcnn", 3, hidden=4, layers=1, learned_initial_state=True)


def test_cli_train_evaluate_sample_with_a_class(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIXELRNN_DATA", raising=False)
    out = tmp_path / "run"
    folder = tmp_path / "images"
    for k, colour in enumerate(((250, 10, 10), (10, 10, 250))):
        (folder / f"c{k}").mkdir(parents=True)
        for n in range(8):
            Image.new("RGB", (8, 8), tuple(c + n for c in colour)).save(
                folder / f"c{k}" / f"{n}.png"
            )
    argv = ["train", "--data", str(folder), "--arch", "gated_pixelcnn", "--hidden", "4"]
    argv += ["--layers", "2", "--image-size", "8", "--batch-size", "4", "--classes", "2"]
    argv += ["--epochs", "1", "--precision", "fp32", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    assert (
        main(["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(folder), "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    logged = json.loads((out / "metrics.jsonl").read_text())["val_bits_per_dim"]
    assert result["bits_per_dim"] == pytest.approx(logged, abs=1e-4)
    png = tmp_path / "red.png"
    argv = ["sample", "--checkpoint", str(out / "best.pt"), "--n", "4", "--class", "0"]
    assert main([*argv, "--out", str(png)]) == 0
    with Image.open(png) as grid:
        assert grid.mode == "RGB"
