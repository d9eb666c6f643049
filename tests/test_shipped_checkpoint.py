"""The pretrained checkpoints under checkpoints/ load safely and are what the READMEs say they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelrnn_utils.checkpoint import load_checkpoint, read_checkpoint
from pixelrnn_utils.data import load_dataset, project_root, split_dataset
from pixelrnn_utils.metrics import bits_per_dim

CHECKPOINTS = project_root() / "checkpoints"
CHECKPOINT = CHECKPOINTS / "row_lstm_cifar10.pt"
WEAK = CHECKPOINTS / "row_lstm_cifar10_30k.pt"  # the earlier checkpoint, notebook 06 compares them
SHARED = project_root().parent / "shared" / "data" / "cifar10-train"
SEED = {"arch": "row_lstm", "in_channels": 3, "hidden": 64, "layers": 4, "skip": False}


def _log() -> list[dict]:
    lines = CHECKPOINT.with_suffix(".jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x.strip()]


def test_loads_with_weights_only_and_matches_its_log():
    model, info = load_checkpoint(CHECKPOINT)
    assert model.config == SEED
    assert CHECKPOINT.stat().st_size < 20 * 2**20
    log = _log()
    assert log == info["metrics"] and info["epoch"] == log[-1]["epoch"]
    x = torch.randint(0, 256, (1, 3, 8, 8))
    with torch.no_grad():
        assert model(x).shape == (1, 256, 3, 8, 8)


def test_keeps_what_resume_needs():
    state = read_checkpoint(CHECKPOINT)
    assert state["optimizer"] is not None and state["optimizer"]["state"]  # Adam's moments
    assert state["position"] is None  # a completed epoch: resume starts the next one
    assert state["train"]["epochs"] == state["epoch"]  # the run finished its schedule


def test_readmes_quote_the_logged_figures():
    """README's results row and checkpoints/README's table carry the log's numbers."""
    log = _log()
    readme = (project_root() / "README.md").read_text()
    shipped = [line for line in readme.splitlines() if line.startswith("| **shipped checkpoint**")]
    assert len(shipped) == 1
    assert f"**{log[-1]['val_bits_per_dim']:.2f}**" in shipped[0]
    seen = sum(r["train_images"] for r in log)
    assert (
        f"{seen:,}" in shipped[0]
        or f"{len(log)} epochs × {log[-1]['train_images']:,}" in shipped[0]
    )
    table = (CHECKPOINTS / "README.md").read_text()
    for r in log:
        assert f"{r['val_bits_per_dim']:.3f}" in table, r


def test_weak_checkpoint_is_a_small_weights_only_copy():
    state = read_checkpoint(WEAK)
    assert state["optimizer"] is None and WEAK.stat().st_size < 4 * 2**20
    model, info = load_checkpoint(WEAK)
    assert model.config == SEED
    assert sum(r["train_images"] for r in info["metrics"]) < sum(r["train_images"] for r in _log())


@pytest.mark.skipif(not Path(SHARED).is_dir(), reason="needs ../shared/data/cifar10-train")
def test_scores_held_out_images_as_logged_and_beats_the_weak_checkpoint():
    model, info = load_checkpoint(CHECKPOINT)
    weak, _ = load_checkpoint(WEAK)
    run = info["train"]
    # the run's own deterministic split: these images were never trained on
    _, held_out = split_dataset(load_dataset(SHARED), run["val_fraction"], seed=run["seed"])
    x = torch.stack([held_out[k][0] for k in range(64)])
    with torch.no_grad():
        bpd = bits_per_dim(model(x), x).item()
        weak_bpd = bits_per_dim(weak(x), x).item()
    logged = _log()[-1]["val_bits_per_dim"]  # all 5,000 held-out images
    assert abs(bpd - logged) < 0.25, (bpd, logged)  # 64 of those images
    assert bpd < weak_bpd - 0.2, (bpd, weak_bpd)
    assert bpd < 7.0  # uniform is 8.00, the per-channel histogram 7.89


FASHION = CHECKPOINTS / "row_lstm_fashion_mnist_4_classes.pt"


def test_class_conditional_fashion_checkpoint_uses_its_label():
    """The shipped class-conditional model (checkpoints/README.md): 4 levels, 10 classes, small,
    and on test images the right label gives a lower NLL than a wrong one."""
    model, info = load_checkpoint(FASHION)
    assert model.config["classes"] == 10 and model.config["levels"] == 4
    assert FASHION.stat().st_size < 2**20
    test = load_dataset("fashion_mnist_4", train=False, limit=200, channels=1, image_size=28)
    x = torch.stack([test[k][0] for k in range(len(test))])
    y = torch.as_tensor([test[k][1] for k in range(len(test))])
    with torch.no_grad():
        right = float(bits_per_dim(model(x, condition=y), x))
        wrong = float(bits_per_dim(model(x, condition=(y + 5) % 10), x))
    assert right < 0.5 < 2.0  # 2 bits/dim is the uniform model at 4 levels
    assert wrong > right + 0.05, (right, wrong)


@pytest.mark.parametrize("path", sorted(CHECKPOINTS.glob("*.pt")), ids=lambda p: p.stem)
def test_every_shipped_checkpoint_loads_matches_its_log_and_is_in_the_readme(path):
    """Each file under checkpoints/ loads safely and draws from its own configuration; its log
    (``<stem>.jsonl``, where shipped) is its metrics; checkpoints/README.md describes it."""
    model, info = load_checkpoint(path)  # weights_only, strict: every weight fits its config
    assert path.stat().st_size < 20 * 2**20
    log = path.with_suffix(".jsonl")
    if log.exists():
        assert [json.loads(x) for x in log.read_text().splitlines() if x.strip()] == info["metrics"]
    assert info["metrics"][-1]["epoch"] >= info["epoch"]  # best.pt may be an earlier epoch
    assert f"`{path.name}`" in (CHECKPOINTS / "README.md").read_text()
    config = model.config
    levels, channels = config.get("levels", 256), config["in_channels"]
    x = torch.randint(0, levels, (1, channels, 8, 8))
    condition = torch.tensor([0]) if config.get("classes") else None
    with torch.no_grad():
        logits = model(x, condition=condition)
    assert logits.shape == (1, levels, channels, 8, 8) and torch.isfinite(logits).all()


MULTISCALE = CHECKPOINTS / "row_lstm_multiscale_binarized_mnist.pt"
SINGLE_SCALE = CHECKPOINTS / "row_lstm_2x25_binarized_mnist.pt"


def test_multiscale_checkpoints_are_the_comparison_the_readmes_describe():
    """Equal parameters, the logged valid figures in README, and on held-out images the
    two-stage NLL adds up and is near the logged one."""
    multi, multi_info = load_checkpoint(MULTISCALE)
    single, single_info = load_checkpoint(SINGLE_SCALE)
    assert multi.config["multiscale"] == 4 and "multiscale" not in single.config
    sizes = [sum(p.numel() for p in m.parameters()) for m in (multi, single)]
    assert abs(sizes[0] - sizes[1]) < 0.03 * sizes[0]
    readme = (project_root() / "README.md").read_text()
    logged = {}
    for name, info in (("multi", multi_info), ("single", single_info)):
        logged[name] = info["metrics"][info["epoch"] - 1]["val_nats_per_image"]
        assert f"valid: {logged[name]:.2f}" in readme
    x = load_dataset("binarized_mnist", split="valid", limit=200, channels=1, image_size=28)
    x = x.images.long()
    with torch.no_grad():
        parts = multi.nll_parts(x)
        whole = torch.nn.functional.cross_entropy(multi(x), x, reduction="none").flatten(1).sum(1)
        single_nats = torch.nn.functional.cross_entropy(single(x), x, reduction="none")
    assert torch.allclose(parts["total"], parts["small"] + parts["big"], rtol=1e-5)
    assert torch.allclose(whole, parts["total"], rtol=1e-4)  # the logits are the exact likelihood
    assert abs(parts["total"].mean().item() - logged["multi"]) < 6  # 200 of the 10,000 images
    assert abs(single_nats.flatten(1).sum(1).mean().item() - logged["single"]) < 6
