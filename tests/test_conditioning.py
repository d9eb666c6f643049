"""Conditioning (paper §3.6 and class-conditional models): a bias on every layer, nothing more.

* Unconditioned models are what they were: the same parameters and the same numbers (reference
  values computed before conditioning existed), and the shipped checkpoints load and score the same.
* Conditioned models of all three architectures are causal in the image, proved two independent
  ways, with the same image dependencies as the unconditioned model; the condition itself reaches
  outputs the image may not (it is given before any pixel).
* Cached sampling of conditioned models equals naive sampling; the CLI's ``--class`` draws images
  of that class, and refuses a class the checkpoint cannot take (exit 2).
* The shipped Fashion-MNIST subset is exactly the published data, quantised to 4 levels.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from pixelrnn_utils.causality import causal_violations, dependency_map
from pixelrnn_utils.checkpoint import export_weights, load_checkpoint, save_checkpoint
from pixelrnn_utils.cli import main
from pixelrnn_utils.data import (
    FASHION_MNIST_4_SIZES,
    count_images,
    load_dataset,
    pack_2bit,
    project_root,
    source_levels,
    unpack_2bit,
)
from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import sample

try:
    from perturb import earlier_than, perturbation_map, single_thread, with_leaky_relu
except ImportError:  # tests/ imported as a package
    from tests.perturb import earlier_than, perturbation_map, single_thread, with_leaky_relu

assert single_thread  # an autouse fixture: importing it applies it to this module

ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")
CHECKPOINTS = project_root() / "checkpoints"
SHARED_FASHION = project_root().parent / "shared" / "data" / "fashion-mnist"


# --- unconditioned models are unchanged -------------------------------------------------------

# Computed with the package before conditioning was added (commit d364dc1): parameter count and
# the sum and sum of squares of float64 logits of a seeded model on a seeded image.
REFERENCE = {
    "pixelcnn": (17968, 58.679508916602394, 997.694180648183),
    "row_lstm": (21264, 173.40952324846563, 1080.2639228515693),
    "diagonal_bilstm": (21136, 106.58485789166588, 1009.2111863364861),
}
# mean NLL (nats) of the shipped checkpoints' float64 logits on a seeded 8x8 image pair
SHIPPED = {"row_lstm_cifar10_30k": 58.89654092762988, "row_lstm_cifar10": 139.07351905805527}


@pytest.mark.parametrize("arch", ARCHS)
def test_unconditioned_model_has_the_same_parameters_and_outputs(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=8, layers=2, skip=True).double()
    assert not any("condition" in name for name in model.state_dict())
    assert "classes" not in model.config and "upsample" not in model.config
    assert model.conditioner is None
    if arch not in REFERENCE:  # added after conditioning: nothing to be unchanged from
        return
    count, total, squares = REFERENCE[arch]
    assert sum(p.numel() for p in model.parameters()) == count
    x = torch.randint(0, 256, (2, 3, 5, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    assert out.sum().item() == pytest.approx(total, rel=1e-10)
    assert (out**2).sum().item() == pytest.approx(squares, rel=1e-10)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoints_load_and_give_the_same_numbers(name):
    model, info = load_checkpoint(CHECKPOINTS / f"{name}.pt")  # strict: every weight fits
    assert "classes" not in info["config"] and model.conditioner is None
    x = torch.randint(0, 256, (2, 3, 8, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model.double()(x)
    nll = torch.nn.functional.cross_entropy(out, x).item()
    assert nll == pytest.approx(SHIPPED[name], rel=1e-10)


# --- conditioned models are causal in the image -----------------------------------------------


def _conditioned(arch: str, kind: str, seed: int = 0):
    """(model, shape, condition of a batch of one) for a class or a small-image condition."""
    torch.manual_seed(seed)
    if kind == "class":
        model = build_model(arch, 3, hidden=8, layers=2, classes=5)
        return model, (3, 4, 5), torch.tensor([3])
    model = build_model(arch, 1, hidden=8, layers=2, upsample=2)
    small = torch.randint(0, 256, (1, 1, 3, 4), generator=torch.Generator().manual_seed(seed))
    return model, (1, 6, 8), small


@pytest.mark.parametrize("kind", ["class", "small image"])
@pytest.mark.parametrize("arch", ARCHS)
def test_conditioned_models_are_causal_two_independent_ways(arch, kind):
    model, shape, condition = _conditioned(arch, kind)
    leaky = with_leaky_relu(model)
    dep = dependency_map(leaky, shape, condition=condition)
    pert = perturbation_map(leaky, shape, condition=condition)
    assert torch.equal(dep, pert)
    assert causal_violations(dep) == []
    assert not (dep & ~earlier_than(*shape)).any()
    # the same image dependencies as the model without conditioning: conditioning adds a bias
    torch.manual_seed(0)
    plain = with_leaky_relu(build_model(arch, shape[0], hidden=8, layers=2))
    assert torch.equal(dep, dependency_map(plain, shape))
    if arch == "diagonal_bilstm":  # full context, exactly the past
        assert torch.equal(dep, earlier_than(*shape))
    # the plain-ReLU model leaks nothing either
    assert causal_violations(dependency_map(model, shape, condition=condition)) == []


@pytest.mark.parametrize("arch", ARCHS)
def test_the_class_reaches_every_output(arch):
    """Even (0, 0, R), which sees no pixel at all, depends on the label."""
    model, shape, _ = _conditioned(arch, "class")
    model = with_leaky_relu(model).eval()
    x = torch.randint(0, 256, (1, *shape), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = model(x, condition=torch.tensor([0])), model(x, condition=torch.tensor([4]))
    moved = (a - b).abs().amax(dim=1)[0]  # (C, H, W)
    assert (moved > 1e-6).all(), moved


@pytest.mark.parametrize("arch", ARCHS)
def test_the_small_image_reaches_the_outputs_it_describes(arch):
    """Big pixel (2k, 2l) *is* small pixel (k, l): its logits read it, before it is drawn."""
    model, shape, small = _conditioned(arch, "small image")
    model = with_leaky_relu(model).eval()
    x = torch.randint(0, 256, (1, *shape), generator=torch.Generator().manual_seed(4))
    for k, col in [(0, 0), (1, 2), (2, 3)]:
        other = small.clone()
        other[0, 0, k, col] = (other[0, 0, k, col] + 128) % 256
        with torch.no_grad():
            change = (model(x, condition=small) - model(x, condition=other)).abs()
        assert change[0, :, 0, 2 * k, 2 * col].max() > 1e-6, (k, col)


def test_injected_leak_is_caught_in_a_conditioned_model():
    model, shape, condition = _conditioned("row_lstm", "class")
    with torch.no_grad():
        model.layers[0].input_to_state.mask.fill_(1)
    assert causal_violations(dependency_map(model, shape, condition=condition))
    assert (perturbation_map(model, shape, condition=condition) & ~earlier_than(*shape)).any()


# --- cached sampling = naive sampling ---------------------------------------------------------


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "channels,shape,kw",
    [
        (3, (3, 4, 5), {}),
        (1, (1, 5, 4), {"skip": True, "learned_initial_state": True}),
        (3, (3, 3, 4), {"learned_initial_state": True}),
    ],
)
@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_cached_equals_naive_for_class_conditional_models(arch, channels, shape, kw):
    torch.manual_seed(0)
    model = build_model(arch, channels, hidden=8, layers=2, classes=4, **kw)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("h0", "c0")):
                p.uniform_(-1, 1)
    labels = torch.tensor([0, 3, 1])
    naive = sample(model, 3, shape, "naive", generator=_gen(), condition=labels)
    cached = sample(model, 3, shape, "cached", generator=_gen(), condition=labels)
    assert torch.equal(naive, cached)
    # the label matters: the same uniforms with other labels give other images
    other = sample(model, 3, shape, "cached", generator=_gen(), condition=labels.flip(0))
    assert not torch.equal(cached, other)
    # one int means that class for every image
    same = sample(model, 2, shape, "cached", generator=_gen(), condition=2)
    assert torch.equal(same, sample(model, 2, shape, "naive", generator=_gen(), condition=2))


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_cached_equals_naive_for_the_small_image_condition(arch):
    torch.manual_seed(0)
    model = build_model(arch, 1, hidden=8, layers=2, upsample=2, levels=2, skip=True)
    small = torch.randint(0, 2, (3, 1, 3, 3), generator=_gen(2))
    naive = sample(model, 3, (1, 6, 6), "naive", generator=_gen(), condition=small)
    cached = sample(model, 3, (1, 6, 6), "cached", generator=_gen(), condition=small)
    assert torch.equal(naive, cached)


def test_conditioning_errors_are_clear():
    torch.manual_seed(0)
    plain = build_model("row_lstm", 1, hidden=8, layers=1)
    classes = build_model("row_lstm", 1, hidden=8, layers=1, classes=3)
    big = build_model("row_lstm", 1, hidden=8, layers=1, upsample=2)
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="unconditioned: it takes no condition"):
        plain(x, condition=torch.tensor([0, 1]))
    with pytest.raises(
        ValueError, match=r"conditional: pass condition= class labels \(B,\) in 0..2"
    ):
        classes(x)
    with pytest.raises(ValueError, match=r"class labels must be in 0..2 .* got \[1, 3\]"):
        classes(x, condition=torch.tensor([1, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        classes(x, condition=torch.tensor([1]))
    with pytest.raises(ValueError, match=r"the small image \(2, 1, 2, 2\)"):
        big(x, condition=torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="not both"):
        build_model("row_lstm", 1, hidden=8, layers=1, classes=3, upsample=2)
    with pytest.raises(ValueError, match="power of 2"):
        build_model("row_lstm", 1, hidden=8, layers=1, upsample=3)
    with pytest.raises(ValueError, match="class labels must be in 0..2"):
        sample(classes, 2, (1, 3, 3), condition=5)


# --- API, checkpoints, CLI --------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"classes": 10}, {"upsample": 2}, {"multiscale": 2}])
def test_conditioned_checkpoints_round_trip(tmp_path, options):
    torch.manual_seed(0)
    model = build_model("diagonal_bilstm", 1, hidden=8, layers=1, levels=4, **options).eval()
    key = next(iter(options))
    assert model.config[key] == options[key]
    x = torch.randint(0, 4, (2, 1, 4, 4), generator=_gen())
    condition = {"classes": torch.tensor([9, 0]), "upsample": x[..., ::2, ::2]}.get(key)
    path = save_checkpoint(tmp_path / "c.pt", model)
    loaded, info = load_checkpoint(path)
    assert info["config"] == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x, condition), model(x, condition))
    small, _ = load_checkpoint(export_weights(path, tmp_path / "c16.pt"))
    with torch.no_grad():  # fp16 weights: the same model up to rounding
        torch.testing.assert_close(small(x, condition), model(x, condition), atol=0.05, rtol=0)


def _fails(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err


def test_cli_class_conditional_train_and_sample(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", "fashion_mnist_4", "--classes", "10", "--out", str(out)]
    argv += ["--hidden", "8", "--layers", "1", "--limit", "32", "--val-limit", "16"]
    assert main([*argv, "--epochs", "1"]) == 0
    capsys.readouterr()
    ckpt = out / "best.pt"
    model, info = load_checkpoint(ckpt)
    assert info["config"]["classes"] == 10 and model.levels == 4
    png = tmp_path / "x.png"
    assert main(["sample", "--checkpoint", str(ckpt), "--class", "7", "--n", "16", "--out",
                 str(png), "--json"]) == 0  # fmt: skip
    import json

    from PIL import Image

    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == [7] * 16
    assert report["method"] == "cached"  # the default: one step per sub-pixel, not a full pass
    with Image.open(png) as image:  # a 4 x 4 grid of 28-pixel tiles, 2-pixel padding
        assert image.size == (4 * 30 + 2, 4 * 30 + 2)
        grid = np.asarray(image.convert("L"))
    # the images are the ones sample() draws for class 7 with the same seed
    expected = sample(model, 16, (1, 28, 28), "cached", generator=_gen(0), condition=7)
    tile = grid[2:30, 2:30]
    assert np.array_equal(tile, (expected[0, 0].numpy() * 255 // 3).astype(np.uint8))
    other = tmp_path / "y.png"  # x.png is kept: sample refuses an existing file
    err = _fails(capsys, "sample", "--checkpoint", str(ckpt), "--class", "10", "--out", str(other))
    assert "--class must be in 0..9" in err and not other.exists()


def test_cli_refuses_class_for_an_unconditional_checkpoint(tmp_path, capsys):
    png = tmp_path / "x.png"
    ckpt = CHECKPOINTS / "row_lstm_cifar10_30k.pt"
    err = _fails(capsys, "sample", "--checkpoint", str(ckpt), "--class", "7", "--out", str(png))
    assert "is not class-conditional" in err and not png.exists()
    out = tmp_path / "bad"
    err = _fails(capsys, "train", "--data", "binarized_mnist", "--classes", "10", "--out",
                 str(out), "--hidden", "4", "--layers", "1", "--limit", "8")  # fmt: skip
    assert "it has no class labels" in err


# --- the shipped Fashion-MNIST subset ---------------------------------------------------------

MD5 = {
    "train_images": "b9c84edce200a5b4b2d1c6ce74dd4385",
    "train_labels": "59533ceadb95213cc7f8bab687acac8c",
    "test_images": "d5a29366a01c3d5e16870dbc9f967880",
    "test_labels": "8dea97a4e78c1bd1b5a6e8efbb870b6e",
}


def _md5(array: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize("split", ["train", "test"])
def test_shipped_fashion_mnist_is_the_published_data_at_4_levels(split):
    data = load_dataset("fashion_mnist_4", train=split == "train", channels=1, image_size=28)
    n = FASHION_MNIST_4_SIZES[split]
    assert len(data) == n == count_images("fashion_mnist_4", train=split == "train")
    assert data.levels == 4 == source_levels("fashion_mnist_4") and data.images.max() == 3
    assert _md5(data.images.view(n, 784).numpy()) == MD5[f"{split}_images"]
    assert _md5(data.labels.numpy().astype(np.uint8)) == MD5[f"{split}_labels"]
    assert data.classes[7] == "Sneaker" and sorted(set(data.labels.tolist())) == list(range(10))
    assert (project_root() / "data" / "fashion_mnist_4.npz").stat().st_size < 3 * 2**20


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="needs ../shared/data/fashion-mnist")
def test_shipped_fashion_mnist_matches_the_original_files():
    import gzip

    raw = gzip.decompress((SHARED_FASHION / "t10k-images-idx3-ubyte.gz").read_bytes())
    original = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    shipped = load_dataset("fashion_mnist_4", train=False, channels=1, image_size=28, limit=100)
    expected = torch.from_numpy(original[shipped.indices].astype(np.int64)) * 4 // 256
    assert torch.equal(shipped.images.long(), expected)


def test_pack_2bit_round_trip():
    values = np.random.default_rng(0).integers(0, 4, size=(5, 784)).astype(np.uint8)
    packed = pack_2bit(values)
    assert packed.shape == (5, 196)
    assert np.array_equal(unpack_2bit(packed), values)
    assert pack_2bit(np.array([[3, 0, 1, 2]], dtype=np.uint8)).tolist() == [[0b11000110]]


def test_fashion_mnist_4_refuses_other_shapes():
    with pytest.raises(ValueError, match="28x28 grey with 4 levels"):
        load_dataset("fashion_mnist_4", channels=3)


# --- notebook 09's exercise checks --------------------------------------------------------------


def test_label_mixture_check_accepts_the_solution_and_refuses_the_naive_one():
    from pixelrnn_utils.conditioning import label_mixture_nll
    from pixelrnn_utils.exercises import check_label_mixture

    assert check_label_mixture(lambda logs: -(torch.logsumexp(logs, 1) - np.log(logs.shape[1])))
    assert not check_label_mixture(lambda logs: -(logs.exp().mean(1).log()))  # underflows: inf
    assert not check_label_mixture(None)
    # the bound: the mixture costs at most ln K more than the best class, never less than it
    logs = torch.tensor([[-10.0, -50.0, -50.0], [-20.0, -20.0, -20.0]])
    mix = label_mixture_nll(logs)
    assert mix[1].item() == pytest.approx(20.0)  # all classes alike: the label is worth nothing
    assert 10.0 < mix[0].item() <= 10.0 + np.log(3)


def test_multiscale_nll_check():
    from pixelrnn_utils.exercises import check_multiscale_nll

    def solution(small, big, f):
        known = torch.zeros_like(big, dtype=torch.bool)
        known[..., ::f, ::f] = True
        return small.flatten(1).sum(1) + big.masked_fill(known, 0).flatten(1).sum(1)

    assert check_multiscale_nll(solution)
    assert not check_multiscale_nll(lambda s, b, f: s.flatten(1).sum(1) + b.flatten(1).sum(1))
    assert not check_multiscale_nll(None)
