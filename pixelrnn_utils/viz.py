"""Figures for images that are ``long`` tensors of sub-pixel values 0..255 (or 0..L-1 with ``levels``)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgb
from torchvision.utils import make_grid

from .data import bins_to_grey

__all__ = [
    "image_grid",
    "show_images",
    "plot_receptive_field",
    "plot_training_curves",
    "RECEPTIVE_FIELD_COLOURS",
]


def image_grid(
    images: torch.Tensor, nrow: int = 8, padding: int = 2, levels: int = 256
) -> np.ndarray:
    """Tile images ``(B, C, H, W)`` (or one ``(C, H, W)``) with values 0..levels-1 into one picture.

    Grey images (C = 1) are shown as grey RGB; with fewer than 256 ``levels`` the bins are shown
    as evenly spaced greys (binary: black and white). Returns a ``uint8`` array ``(H, W, 3)`` for
    ``plt.imshow``; the padding between tiles is white.
    """
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
    if levels != 256:
        images = bins_to_grey(images.clamp(0, levels - 1), levels)
    images = images.clamp(0, 255).to(torch.uint8)
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


def show_images(
    images: torch.Tensor,
    nrow: int = 8,
    title: str | None = None,
    ax: plt.Axes | None = None,
    scale: float = 1.0,
    levels: int = 256,
    row_labels: list[str] | None = None,
) -> plt.Axes:
    """Show images ``(B, C, H, W)`` in a grid of ``nrow`` columns (axis off); returns the axes.

    Without ``ax`` a new figure is made, ``scale`` inches per image tile. ``levels``: how many
    values a sub-pixel takes (2 for binarized MNIST), see :func:`image_grid`. ``row_labels``: a
    name written left of each row of the grid (e.g. the class each row was drawn from).
    """
    grid = image_grid(images, nrow=nrow, levels=levels)
    count = 1 if torch.as_tensor(images).dim() == 3 else len(images)
    rows = math.ceil(count / nrow)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for a grid of {rows} rows")
    if ax is None:
        _, ax = plt.subplots(figsize=(min(nrow, count) * scale, rows * scale))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    for row, label in enumerate(row_labels or []):
        y = (row + 0.5) * grid.shape[0] / rows
        ax.text(-4, y, label, ha="right", va="center", fontsize="small")
    if title is not None:
        ax.set_title(title)
    return ax


# Colours of :func:`plot_receptive_field`, one per kind of pixel.
RECEPTIVE_FIELD_COLOURS = {
    "target": "#f2c14e",  # the output pixel itself
    "seen": "#3b6ea8",  # earlier pixel, every channel seen
    "partly seen": "#9ec5e8",  # earlier pixel, only some channels seen
    "not seen": "#e4572e",  # earlier pixel the output does not see (blind spot)
    "future": "#eeeeee",  # later pixel, correctly unseen
    "leak": "#7b2d8e",  # later pixel the output sees: not causal
}


def plot_receptive_field(
    dep: torch.Tensor,
    i: int,
    j: int,
    c: int = 0,
    ax: plt.Axes | None = None,
    title: str | None = None,
    legend: bool | list[str] = True,
) -> plt.Axes:
    """Draw which input pixels output sub-pixel (i, j, c) depends on.

    ``dep`` is a ``causality.dependency_map`` ``(C, H, W, C, H, W)``. Earlier pixels (raster order)
    are blue when seen and red when not (a limited reach or a *blind spot*); later pixels are light
    grey, or purple when seen (a causality leak). For colour images the number of input channels
    seen at the output pixel itself is written (``c`` of them are allowed: the earlier colours of
    the same pixel).

    ``legend``: True lists the kinds of pixel present in this panel, a list of kinds (keys of
    ``RECEPTIVE_FIELD_COLOURS``) lists those, e.g. for one legend shared by several panels.
    """
    dep = torch.as_tensor(dep)
    C, H, W = dep.shape[:3]
    seen = dep[c, i, j].sum(dim=0)  # (H, W): input channels seen per pixel
    position = torch.arange(H)[:, None] * W + torch.arange(W)[None, :]
    past = position < i * W + j
    kind = np.full((H, W), "future", dtype=object)
    kind[(past & (seen == C)).numpy()] = "seen"
    kind[(past & (seen > 0) & (seen < C)).numpy()] = "partly seen"
    kind[(past & (seen == 0)).numpy()] = "not seen"
    kind[(~past & (seen > 0)).numpy()] = "leak"
    kind[i, j] = "leak" if int(seen[i, j]) > c else "target"
    rgb = np.array([[to_rgb(RECEPTIVE_FIELD_COLOURS[k]) for k in row] for row in kind], dtype=float)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.3 * W + 1, 0.3 * H + 1))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, W, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, H, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if C > 1:  # colours of the output pixel itself that are seen
        ax.text(j, i, str(int(seen[i, j])), ha="center", va="center", fontsize=8)
    if title is None:
        names = "RGB" if C == 3 else ("L" if C == 1 else None)
        colour = names[c] if names else str(c)
        title = f"output ({i},{j},{colour})"
    ax.set_title(title)
    if legend:
        present = (
            [k for k in RECEPTIVE_FIELD_COLOURS if (kind == k).any()]
            if legend is True
            else list(legend)
        )
        handles = [plt.Rectangle((0, 0), 1, 1, color=RECEPTIVE_FIELD_COLOURS[k]) for k in present]
        ax.legend(
            handles,
            present,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=8,
            frameon=False,
        )
    return ax


def plot_training_curves(
    rows: list[dict],
    ax: plt.Axes | None = None,
    title: str | None = None,
    start: float | None = None,
) -> plt.Axes:
    """Train and validation bits/dim per epoch from ``metrics.jsonl`` rows; returns the axes.

    ``rows`` are the dicts a training run logs (keys ``epoch``, ``train_bits_per_dim``,
    ``val_bits_per_dim``). Train bits/dim is the running mean over the epoch's batches, so it lags
    behind the model's state at the end of the epoch; validation is measured after the epoch.
    ``start``, the validation bits/dim of the untrained model, is drawn at epoch 0.
    """
    if not rows:
        raise ValueError("no metrics rows to plot (has the run completed an epoch?)")
    epochs = [int(r["epoch"]) for r in rows]
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    last = {key: float(rows[-1][key]) for key in ("train_bits_per_dim", "val_bits_per_dim")}
    higher = max(last, key=last.get)  # whose last value is higher (train on a tie)
    for key, label, style in (
        ("train_bits_per_dim", "train (mean over the epoch)", "o-"),
        ("val_bits_per_dim", "validation (end of epoch)", "s-"),
    ):
        xs, values = list(epochs), [float(r[key]) for r in rows]
        if start is not None and key == "val_bits_per_dim":
            xs, values = [0, *xs], [float(start), *values]
        ax.plot(xs, values, style, label=label)
        # the two last values side by side: the higher one's label above, the lower one's below,
        # so that they stay readable when the curves end close together
        upper = key == higher
        ax.annotate(
            f"{values[-1]:.3f}",
            (xs[-1], values[-1]),
            textcoords="offset points",
            xytext=(6, 3 if upper else -3),
            va="bottom" if upper else "top",
            fontsize=8,
        )
    if start is not None:
        epochs = [0, *epochs]
        ax.annotate(
            f"untrained {float(start):.2f}",
            (0, float(start)),
            textcoords="offset points",
            xytext=(6, 0),
            va="center",
            fontsize=8,
        )
    ax.set_xticks(epochs)
    ax.set_xlim(min(epochs) - 0.3, max(epochs) + 0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("bits/dim")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title is not None:
        ax.set_title(title)
    return ax
