"""Levels: how many values a sub-pixel takes (256 for 8-bit images, 2 for binarized MNIST, ...).

:func:`quantize` puts 8-bit values into L equal-width bins, :func:`bins_to_grey` shows bins on the
0..255 scale again, :func:`requantize` does both. :func:`source_levels` says how many levels a source
has and :func:`with_levels` gives a dataset the levels a model predicts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .image_dataset import ImageDataset
from .shipped import _is_fashion_mnist_4, is_binarized_mnist

__all__ = [
    "requantize",
    "quantize",
    "bins_to_grey",
    "check_levels",
    "source_levels",
    "with_levels",
]


def check_levels(levels: int) -> int:
    """``levels`` if it is a number of sub-pixel values the course's models can use (2 to 256)."""
    if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 256:
        raise ValueError(
            f"levels must be an integer from 2 (binary) to 256 (8-bit images), got {levels!r}"
        )
    return levels


def quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """8-bit values ``0..255`` -> ``levels`` equal-width bins ``0 .. levels - 1`` (``long``).

    Value ``v`` goes to bin ``v * levels // 256``: ``levels=256`` is the identity, ``levels=2``
    maps 0..127 to 0 and 128..255 to 1. The model then predicts an L-way softmax per sub-pixel;
    :func:`bins_to_grey` shows bins on the 0..255 scale again.
    """
    check_levels(levels)
    return images.long() * levels // 256


def bins_to_grey(bins: torch.Tensor, levels: int) -> torch.Tensor:
    """Bins ``0 .. levels - 1`` -> evenly spaced values on 0..255 (``round(q * 255 / (L - 1))``)."""
    check_levels(levels)
    return (bins.long() * 255 + (levels - 1) // 2) // (levels - 1)


def requantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Show images with only ``levels`` intensity levels (per sub-pixel), back on the 0..255 scale.

    Value ``v`` falls into bin ``q = v * levels // 256`` (equal-width bins), shown as the evenly
    spaced value ``round(q * 255 / (levels - 1))``. ``levels=256`` is the identity; ``levels=2``
    maps 0..127 to 0 and 128..255 to 255. Returns a ``long`` tensor of the input's shape.
    """
    return bins_to_grey(quantize(images, levels), levels)


def with_levels(dataset: ImageDataset, levels: int) -> ImageDataset:
    """``dataset`` with its sub-pixels in ``levels`` bins: 8-bit images are quantised
    (:func:`quantize`); data that has fewer levels than asked for is refused (a 256-level model
    cannot be trained or evaluated on binary images)."""
    check_levels(levels)
    if dataset.levels == levels:
        return dataset
    if dataset.levels != 256:
        raise ValueError(
            f"this data has {dataset.levels} levels per sub-pixel and the model predicts "
            f"{levels}: a {levels}-level model cannot be trained or evaluated on it. Use "
            f"--levels {dataset.levels} (the default for this data) or a {dataset.levels}-level "
            "checkpoint"
        )
    images = quantize(dataset.images, levels).to(torch.uint8)
    return ImageDataset(
        images, dataset.labels, dataset.classes, dataset.files, dataset.indices, levels=levels
    )


def source_levels(source: str | Path) -> int:
    """How many values a sub-pixel of ``source`` takes: 2 for binarized MNIST, 4 for
    ``fashion_mnist_4``, else 256."""
    if _is_fashion_mnist_4(source):
        return 4
    return 2 if is_binarized_mnist(source) else 256
