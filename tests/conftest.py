"""Shared fixtures: tiny ImageFolders written to a temporary directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image_folder(
    root: Path, n: int, size: int = 32, classes: int = 2, mode: str = "RGB", seed: int = 0
) -> Path:
    """``n`` smooth random images in ``root/<class>/<k>.png`` (smooth, so a model can learn them)."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for k in range(n):
        folder = root / f"class{k % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=channels)
        ramp = np.linspace(0, 60, size)[None, :, None] + np.linspace(0, 60, size)[:, None, None]
        noise = rng.integers(0, 12, size=(size, size, channels))
        img = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img[..., 0] if channels == 1 else img, mode).save(folder / f"{k:03d}.png")
    return root


def tiny_run_config(folder: Path, out: Path, **overrides):
    """A TrainConfig for a seconds-long run on ``folder`` (8x8 images, h=6, one layer)."""
    from pixelrnn_utils.train import TrainConfig

    base = dict(
        data=str(folder),
        arch="row_lstm",
        hidden=6,
        layers=1,
        batch_size=4,
        lr=1e-2,
        image_size=8,
        val_fraction=0.25,
        out=str(out),
        progress=False,
        device="cpu",  # what the tests claim, on a GPU host too
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """96 RGB 32x32 images in two classes."""
    return write_image_folder(tmp_path / "images", 96)


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """24 RGB 8x8 images: for trainer tests that run several epochs."""
    return write_image_folder(tmp_path / "small", 24, size=8)
