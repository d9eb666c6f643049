"""Loading a dataset by name or path, counting its images, splitting it, batching it.

Sources understood by :func:`load_dataset`:

* ``"cifar10"``, ``"mnist"``, ``"fashion_mnist"`` -- torchvision datasets, downloaded into ``root``
  when missing;
* a folder path -- an ImageFolder ``<folder>/<class>/<image>.png|jpg|...`` (class = sub-folder name,
  searched recursively), or a flat folder of images (every image gets label 0);
* ``"binarized_mnist"``, ``"fashion_mnist_4"`` -- shipped with the course (``datasets.shipped``).

:func:`load_dataset` picks the loader; :func:`split_indices` / :func:`split_dataset` carve a
validation set out of one split and :func:`make_loader` batches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..settings import TORCHVISION_SOURCES
from .amat import BINARIZED_MNIST
from .folders import _find_images, _load_image_folder
from .image_dataset import ImageDataset
from .shipped import (
    FASHION_MNIST_4,
    FASHION_MNIST_4_SIZES,
    _binarized_mnist_split,
    _is_fashion_mnist_4,
    _load_binarized_mnist,
    _load_fashion_mnist_4,
    is_binarized_mnist,
)
from .torchvision_sources import _load_torchvision, _torchvision_dataset

__all__ = [
    "count_images",
    "split_indices",
    "load_dataset",
    "split_dataset",
    "make_loader",
]


def count_images(
    source: str | Path, root: str | Path = "data", train: bool = True, download: bool = True
) -> int:
    """How many images ``load_dataset(source, ...)`` would see, without decoding any."""
    if is_binarized_mnist(source):
        return len(_binarized_mnist_split(source, "train" if train else "test"))
    if _is_fashion_mnist_4(source):
        return FASHION_MNIST_4_SIZES["train" if train else "test"]
    if isinstance(source, str) and source.lower() in TORCHVISION_SOURCES:
        root = Path(root).expanduser().resolve()
        return len(_torchvision_dataset(source.lower(), root, train, download))
    return len(_find_images(_check_folder(source))[0])


def _check_folder(source: str | Path) -> Path:
    folder = Path(source).expanduser()
    if not folder.exists():
        raise FileNotFoundError(
            f"dataset path {str(source)!r} does not exist (resolved: {folder.resolve()}). Use one of "
            f"{', '.join((*TORCHVISION_SOURCES, BINARIZED_MNIST, FASHION_MNIST_4))} or an existing "
            "ImageFolder; check PIXELRNN_DATA, e.g. "
            f"`export PIXELRNN_DATA=/path/to/images`."
        )
    if not folder.is_dir():
        raise ValueError(f"dataset path {folder} is a file; expected a folder root/<class>/<image>")
    return folder.resolve()


def load_dataset(
    source: str | Path,
    root: str | Path = "data",
    train: bool = True,
    image_size: int | None = 32,
    channels: int = 3,
    limit: int | None = None,
    download: bool = True,
    indices: Sequence[int] | None = None,
    split: str | None = None,
) -> ImageDataset:
    """Load images as ``(long (C, H, W) in 0..255, int label)`` items.

    Args:
        source: ``"cifar10"``, ``"mnist"``, ``"fashion_mnist"`` (torchvision), ``"binarized_mnist"``
            (shipped with the course: 28x28, values 0/1, ``levels`` 2, no labels; or the path of
            a folder holding its three ``.amat`` files), ``"fashion_mnist_4"`` (shipped: 28x28,
            bins 0..3, ``levels`` 4, labels 0..9; 12,000 train and 10,000 test images), or the path of an ImageFolder
            ``<source>/<class>/<image>`` (or a flat folder of images, label 0).
        root: where torchvision datasets are stored/downloaded; relative paths resolve against the
            current working directory. Ignored for folder sources.
        train: the training split (torchvision sources only; a folder is one split -- carve a
            validation set out of it with :func:`split_dataset`).
        image_size: square side length. Images of another size are resized (shorter side to
            ``image_size``, bicubic) then centre-cropped; ``None`` keeps the native size.
        channels: 3 (RGB) or 1 (grey).
        limit: keep at most this many images, evenly spread over the sorted file list (so a small
            run still sees every class). Deterministic.
        download: let torchvision download a missing dataset.
        indices: decode only these positions of the source's sorted image list (``limit`` then
            keeps the first ``limit`` of them). The result's ``indices`` attribute says which
            positions it holds (unreadable files are skipped).
        split: binarized MNIST only: ``"train"``, ``"valid"`` or ``"test"`` (its published
            splits); by default ``"train"`` when ``train`` is True, else ``"test"``.

    Raises:
        FileNotFoundError: ``source`` is neither a known name nor an existing path.
        ValueError: the folder holds no readable images, or sizes differ with ``image_size=None``.
        RuntimeError: a torchvision dataset could not be loaded (e.g. no network for a download).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if is_binarized_mnist(source):
        split = split or ("train" if train else "test")
        return _load_binarized_mnist(source, split, image_size, channels, limit, indices)
    if split is not None:
        raise ValueError(f"split={split!r} applies to {BINARIZED_MNIST} only; use train=True/False")
    if _is_fashion_mnist_4(source):
        return _load_fashion_mnist_4(train, image_size, channels, limit, indices)
    if isinstance(source, str) and source.lower() in TORCHVISION_SOURCES:
        root = Path(root).expanduser().resolve()
        return _load_torchvision(
            source.lower(), root, train, image_size, channels, limit, download, indices
        )
    return _load_image_folder(_check_folder(source), image_size, channels, limit, indices)


# ---------------------------------------------------------------------------------------------
# Splits and loaders
# ---------------------------------------------------------------------------------------------


def split_indices(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Sorted ``(train, validation)`` positions of ``range(n)``, deterministic from ``seed``.

    The validation part holds ``round(n * val_fraction)`` positions, but each part gets at least
    one when ``n >= 2``. Uses its own generator: the global RNG state is neither used nor changed.
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    n_val = round(n * val_fraction)
    if n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def split_dataset(
    dataset: Dataset, val_fraction: float = 0.1, seed: int = 0
) -> tuple[Subset, Subset]:
    """Split into ``(train, validation)`` subsets with :func:`split_indices`."""
    train_indices, val_indices = split_indices(len(dataset), val_fraction, seed)
    return Subset(dataset, train_indices), Subset(dataset, val_indices)


def make_loader(
    dataset: Dataset,
    batch_size: int = 16,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader of ``(images long (B, C, H, W), labels long (B,))`` batches.

    Shuffling uses a generator seeded with ``seed`` (the same order every run); memory is pinned
    when CUDA is available, for faster copies to the GPU.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )
