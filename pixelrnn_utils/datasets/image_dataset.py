"""The in-memory dataset every source becomes, and which of a source's images it holds.

:class:`ImageDataset` keeps the images as one ``uint8`` tensor ``(N, C, H, W)`` and returns each
item as ``(long (C, H, W), int label)``: integers ``0 .. levels - 1``, no normalisation, no floats.
``limit`` and ``indices`` (see :func:`~pixelrnn_utils.datasets.loading.load_dataset`) choose which
positions of a source are decoded: :func:`_select`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

__all__ = ["ImageDataset"]


class ImageDataset(Dataset):
    """Images held in memory as one ``uint8`` tensor; items are ``(long (C, H, W), int label)``.

    Attributes:
        images: ``uint8`` tensor ``(N, C, H, W)``.
        labels: ``long`` tensor ``(N,)``.
        classes: class names; ``labels`` index into it.
        files: the image files kept (ImageFolder sources), else ``None``.
        indices: for each image, its position in the source's full (sorted) list of images.
        levels: how many values a sub-pixel can take, ``0 .. levels - 1`` (256 for 8-bit images,
            2 for binarized MNIST; :func:`quantize` lowers it).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        files: list[Path] | None = None,
        indices: list[int] | None = None,
        levels: int = 256,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        self.images = images
        self.labels = labels.long()
        self.classes = list(classes)
        self.files = files
        self.indices = list(range(images.shape[0])) if indices is None else list(indices)
        self.levels = levels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].long(), int(self.labels[index])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        levels = "" if self.levels == 256 else f", {self.levels} levels"
        return f"ImageDataset({n} images, {c}x{h}x{w}, {len(self.classes)} classes{levels})"


def _spread(n: int, limit: int | None) -> list[int]:
    """At most ``limit`` indices of ``range(n)``, evenly spread (deterministic)."""
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return [i * n // limit for i in range(limit)]


def _select(n: int, limit: int | None, indices: Sequence[int] | None) -> list[int]:
    """The source positions to decode: ``indices`` (sorted, checked) or ``limit`` spread ones."""
    if indices is None:
        return _spread(n, limit)
    keep = sorted(set(int(i) for i in indices))
    if keep and (keep[0] < 0 or keep[-1] >= n):
        raise ValueError(f"indices must lie in 0..{n - 1}, got {keep[0]}..{keep[-1]}")
    return keep[:limit] if limit is not None else keep
