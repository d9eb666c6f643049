"""The pretrained checkpoint under checkpoints/ loads safely and is what README says it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelrnn_utils.checkpoint import load_checkpoint
from pixelrnn_utils.data import load_dataset, project_root, split_dataset
from pixelrnn_utils.metrics import bits_per_dim

CHECKPOINT = project_root() / "checkpoints" / "row_lstm_cifar10.pt"
SHARED = project_root().parent / "shared" / "data" / "cifar10-train"


def test_loads_with_weights_only_and_matches_its_log():
    model, info = load_checkpoint(CHECKPOINT)
    assert model.config == {
        "arch": "row_lstm",
        "in_channels": 3,
        "hidden": 64,
        "layers": 4,
        "skip": False,
    }
    assert CHECKPOINT.stat().st_size < 20 * 2**20
    log = [json.loads(x) for x in CHECKPOINT.with_suffix(".jsonl").read_text().splitlines()]
    assert log == info["metrics"][: len(log)] and info["epoch"] == max(
        r["epoch"] for r in info["metrics"]
    )
    x = torch.randint(0, 256, (1, 3, 8, 8))
    with torch.no_grad():
        assert model(x).shape == (1, 256, 3, 8, 8)


@pytest.mark.skipif(not Path(SHARED).is_dir(), reason="needs ../shared/data/cifar10-train")
def test_beats_the_histogram_baseline_on_held_out_images():
    model, info = load_checkpoint(CHECKPOINT)
    run = info["train"]
    data = load_dataset(
        SHARED
    )  # the run's own deterministic split: these images were never trained on
    _, held_out = split_dataset(data, run["val_fraction"], seed=run["seed"])
    x = torch.stack([held_out[k][0] for k in range(16)])
    with torch.no_grad():
        bpd = bits_per_dim(model(x), x).item()
    assert bpd < 6.0, bpd  # uniform is 8.00, the per-channel histogram 7.89
