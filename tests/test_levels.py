"""Levels (values per sub-pixel) as a modelling choice, and binarized MNIST, the paper's Table 4 data.

* The shipped ``data/binarized_mnist.npz`` is exactly the published arrays (their md5s), and the
  ``.amat`` reader reads the original files to the same arrays.
* At L = 2 every architecture is causal, the 2-way softmax is the paper's sigmoid, and cached
  sampling equals naive sampling.
* Bad input (levels out of range, data of other levels than the model, a file that is not what
  its name says) is one clear error (CLI: exit 2) before any work, with nothing written.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrnn_utils.causality import causal_violations, dependency_map
from pixelrnn_utils.cli import main
from pixelrnn_utils.data import (
    BINARIZED_MNIST_SPLITS,
    ImageDataset,
    bins_to_grey,
    count_images,
    load_dataset,
    quantize,
    read_amat,
    requantize,
    source_levels,
    with_levels,
)
from pixelrnn_utils.metrics import nll
from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import sample

try:
    from perturb import earlier_than, perturbation_map
except ImportError:  # tests/ imported as a package
    from tests.perturb import earlier_than, perturbation_map

# md5 of each split as a (N, 784) uint8 C-order array, from ../shared/data/binarized-mnist/README.md
MD5 = {
    "train": "8d4f0427d6c2572b5e9994e08bad66de",
    "valid": "3e33becd40c694040e5e6c812e2f4b50",
    "test": "fc34623e13bd64fed2f8b61365198339",
}
SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binarized-mnist"
ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")


@pytest.mark.parametrize("split", BINARIZED_MNIST_SPLITS)
def test_shipped_binarized_mnist_is_the_published_data(split):
    data = load_dataset("binarized_mnist", split=split, channels=1, image_size=28)
    assert len(data) == SIZES[split] == count_images("binarized_mnist", train=split == "train")
    assert data.levels == 2 and data[0][0].shape == (1, 28, 28)
    array = data.images.view(len(data), 784).numpy()
    assert hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest() == MD5[split]


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/binarized-mnist")
def test_amat_reader_reads_the_original_files():
    valid = read_amat(SHARED / "binarized_mnist_valid.amat")
    assert valid.shape == (10_000, 784) and valid.dtype == np.uint8
    assert hashlib.md5(valid.tobytes()).hexdigest() == MD5["valid"]
    folder = load_dataset(str(SHARED), split="valid", channels=1, image_size=28, limit=50)
    shipped = load_dataset("binarized_mnist", split="valid", channels=1, image_size=28, limit=50)
    assert torch.equal(folder.images, shipped.images) and folder.indices == shipped.indices


def test_an_amat_that_is_not_what_its_name_says(tmp_path):
    fake = tmp_path / "binarized_mnist_train.amat"
    fake.write_text("0 1 0 1\n" * 10)  # the text format some copies use: not this one
    with pytest.raises(ValueError, match="not a binarized MNIST .amat file.*no MATLAB 5 header"):
        read_amat(fake)
    header = b"MATLAB 5.0 MAT-file".ljust(124) + b"\x00\x01IM"
    fake.write_bytes(header + b"\x0f\x00\x00\x00\x10\x00\x00\x00" + b"not zlib at all!")
    with pytest.raises(ValueError, match="could not be read"):
        read_amat(fake)
    with pytest.raises(ValueError, match="not a binarized MNIST"):  # through the data source
        load_dataset(str(tmp_path), channels=1, image_size=28)


def test_binarized_mnist_refuses_other_shapes_and_splits():
    with pytest.raises(ValueError, match="28x28 grey"):
        load_dataset("binarized_mnist", channels=3)
    with pytest.raises(ValueError, match="splits train, valid, test"):
        load_dataset("binarized_mnist", split="val", channels=1, image_size=28)
    assert source_levels("binarized_mnist") == 2 and source_levels("cifar10") == 256


def test_quantize_bins_and_back():
    values = torch.arange(256)
    for levels in (2, 3, 4, 8, 32, 256):
        bins = quantize(values, levels)
        assert bins.min() == 0 and bins.max() == levels - 1
        assert torch.equal(torch.bincount(bins), torch.bincount(values * levels // 256))
        grey = bins_to_grey(bins, levels)
        assert grey[0] == 0 and grey[-1] == 255
        assert torch.equal(grey, requantize(values, levels))
    assert torch.equal(quantize(values, 256), values)
    for bad in (1, 257, 2.0, True):
        with pytest.raises(ValueError, match="levels must be an integer from 2"):
            quantize(values, bad)


def test_with_levels_quantises_8_bit_data_and_refuses_binary_data_for_more_levels():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    eight_bit = ImageDataset(images, torch.zeros(1), ["a"])
    four = with_levels(eight_bit, 4)
    assert four.levels == 4 and torch.equal(four[0][0], quantize(images[0], 4))
    assert with_levels(eight_bit, 256) is eight_bit
    binary = ImageDataset(images % 2, torch.zeros(1), ["a"], levels=2)
    with pytest.raises(ValueError, match="has 2 levels per sub-pixel and the model predicts 256"):
        with_levels(binary, 256)


@pytest.mark.parametrize("arch", ARCHS)
def test_two_level_models_are_causal(arch):
    torch.manual_seed(0)
    model = build_model(arch, 1, hidden=8, layers=2, levels=2, skip=True)
    assert model.config["levels"] == 2
    shape = (1, 5, 6)
    dep = dependency_map(model, shape)
    assert not causal_violations(dep)
    assert not (dep & ~earlier_than(*shape)).any()
    # an independent check (perturb inputs, watch the logits) finds the same dependencies
    assert torch.equal(dep, perturbation_map(model, shape))
    assert dep[0, 4, 5].sum() > 6  # not vacuous: the last pixel sees a good part of its past


def test_two_way_softmax_is_the_papers_sigmoid():
    """p(x = 1) from the 2-way softmax over (a, b) is sigmoid(b - a): the same model family."""
    torch.manual_seed(0)
    model = build_model("row_lstm", 1, hidden=8, layers=1, levels=2)
    x = torch.randint(0, 2, (3, 1, 6, 6))
    logits = model(x)
    assert logits.shape == (3, 2, 1, 6, 6)
    p_one = torch.sigmoid(logits[:, 1] - logits[:, 0])
    assert torch.allclose(p_one, logits.softmax(dim=1)[:, 1], atol=1e-6)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 1] - logits[:, 0], x.float()
    )
    assert nll(logits, x).item() == pytest.approx(bce.item(), rel=1e-5)


def test_levels_256_keeps_the_config_and_the_numbers():
    torch.manual_seed(0)
    default = build_model("row_lstm", 3, hidden=8, layers=1)
    torch.manual_seed(0)
    explicit = build_model("row_lstm", 3, hidden=8, layers=1, levels=256)
    assert "levels" not in default.config and default.config == explicit.config
    x = torch.randint(0, 256, (2, 3, 5, 5))
    assert torch.equal(default(x), explicit(x))
    with pytest.raises(ValueError, match="levels must be an integer from 2 to 256"):
        build_model("row_lstm", 3, hidden=8, layers=1, levels=1)


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_cached_equals_naive_at_two_levels(arch):
    torch.manual_seed(1)
    model = build_model(arch, 1, hidden=8, layers=2, levels=2, skip=True)
    shape = (1, 6, 5)
    naive = sample(model, 3, shape, "naive", generator=torch.Generator().manual_seed(5))
    cached = sample(model, 3, shape, "cached", generator=torch.Generator().manual_seed(5))
    assert torch.equal(naive, cached)
    assert set(naive.unique().tolist()) <= {0, 1}


# --- the command line ------------------------------------------------------------------------


def _fails(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("levels", ["1", "300"])
def test_cli_levels_out_of_range(levels, tmp_path, capsys):
    out = tmp_path / "run"
    err = _fails(
        capsys, "train", "--data", "binarized_mnist", "--levels", levels, "--out", str(out)
    )
    assert "--levels" in err and "from 2" in err
    assert not out.exists()


def test_cli_binarized_mnist_train_evaluate_sample(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", "binarized_mnist", "--out", str(out), "--hidden", "4"]
    argv += ["--layers", "1", "--limit", "32", "--val-limit", "16", "--epochs", "1"]
    assert main(argv) == 0
    row = json.loads((out / "metrics.jsonl").read_text())
    assert 0 < row["val_bits_per_dim"] < 1.2  # barely trained: about a uniform model's 1 bit
    assert row["val_nats_per_image"] == pytest.approx(row["val_bits_per_dim"] * 784 * math.log(2))
    capsys.readouterr()
    ckpt = str(out / "best.pt")
    assert main(["evaluate", "--checkpoint", ckpt, "--data", "binarized_mnist", "--split", "test",
                 "--limit", "20"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "nats per image" in printed and "on 20 test images" in printed
    # evaluated on 256-level data, the 2-level checkpoint is refused before any work
    err = _fails(capsys, "evaluate", "--checkpoint", ckpt, "--data", "cifar10")
    assert "trained on binarized_mnist (2 levels" in err and "--data binarized_mnist" in err
    png = tmp_path / "digits.png"
    assert main(["sample", "--checkpoint", ckpt, "--n", "2", "--out", str(png)]) == 0
    from PIL import Image

    with Image.open(png) as image:
        assert set(np.unique(np.asarray(image))) <= {0, 255}  # black and white digits
        assert image.size[0] > 2 * 28  # two 28-pixel tiles with padding


def test_cli_256_level_checkpoint_on_binary_data(tiny_folder, tmp_path, capsys):
    out = tmp_path / "rgb"
    argv = ["train", "--data", str(tiny_folder), "--out", str(out), "--hidden", "4", "--layers"]
    argv += ["1", "--limit", "8", "--val-limit", "4", "--epochs", "1", "--channels", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    err = _fails(capsys, "evaluate", "--checkpoint", str(out / "last.pt"), "--data",
                 "binarized_mnist")  # fmt: skip
    assert "has 2 levels per sub-pixel and the model in" in err and "predicts 256" in err
