"""Figures for images that are ``long`` tensors of sub-pixel values 0..255."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid

__all__ = ["image_grid", "show_images"]


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile images ``(B, C, H, W)`` (or one ``(C, H, W)``) with values 0..255 into one picture.

    Grey images (C = 1) are shown as grey RGB. Returns a ``uint8`` array ``(H, W, 3)`` for
    ``plt.imshow``; the padding between tiles is white.
    """
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
    images = images.clamp(0, 255).to(torch.uint8)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


def show_images(
    images: torch.Tensor,
    nrow: int = 8,
    title: str | None = None,
    ax: plt.Axes | None = None,
    scale: float = 1.0,
) -> plt.Axes:
    """Show images ``(B, C, H, W)`` in a grid of ``nrow`` columns (axis off); returns the axes.

    Without ``ax`` a new figure is made, ``scale`` inches per image tile.
    """
    grid = image_grid(images, nrow=nrow)
    if ax is None:
        count = 1 if torch.as_tensor(images).dim() == 3 else len(images)
        columns = min(nrow, count)
        rows = math.ceil(count / nrow)
        _, ax = plt.subplots(figsize=(columns * scale, rows * scale))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title is not None:
        ax.set_title(title)
    return ax
