"""The torchvision sources: CIFAR-10, MNIST and Fashion-MNIST, downloaded into ``root`` when missing.

Their names are ``settings.TORCHVISION_SOURCES``. Each image is converted like an ImageFolder's (the
same size and mode rules: :func:`~pixelrnn_utils.datasets.folders.pil_to_array`), and large
conversions go through the decoded-data cache (``datasets.cache``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .cache import _cached_decode, _fingerprint
from .folders import _progress, _stack, pil_to_array
from .image_dataset import ImageDataset, _select

_TORCHVISION_CLASSES = {"cifar10": "CIFAR10", "mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def _torchvision_dataset(name: str, root: Path, train: bool, download: bool):
    """The torchvision dataset object (downloaded into ``root`` when missing and allowed)."""
    import torchvision.datasets as tv

    dataset_class = getattr(tv, _TORCHVISION_CLASSES[name])
    try:
        return dataset_class(str(root), train=train, download=download)
    except Exception as e:
        raise RuntimeError(
            f"could not load {name!r} into {root} ({type(e).__name__}: {e}). Without network "
            f"access, use a local ImageFolder (root/<class>/<image>.png|jpg) instead: set "
            f"PIXELRNN_DATA, e.g. `export PIXELRNN_DATA=/path/to/images`, or pass its path as "
            f"source."
        ) from e


def _load_torchvision(
    name: str,
    root: Path,
    train: bool,
    image_size: int | None,
    channels: int,
    limit: int | None,
    download: bool,
    indices: Sequence[int] | None = None,
) -> ImageDataset:
    """Fetch a torchvision dataset and convert it like an ImageFolder (same size/mode rules)."""
    dataset = _torchvision_dataset(name, root, train, download)
    keep = _select(len(dataset), limit, indices)
    folder = root / _TORCHVISION_CLASSES[name]
    if hasattr(dataset, "base_folder"):  # CIFAR-10 keeps its files in root/<base_folder>
        folder = root / dataset.base_folder
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    key_parts = {
        "source": f"torchvision:{name}:{'train' if train else 'test'}:{root}",
        "files": _fingerprint(files, root),
        "n": len(dataset),
        "image_size": image_size,
        "channels": channels,
    }

    def decode(keep: list[int]) -> tuple[torch.Tensor, list[int], list[int]]:
        arrays, labels = [], []
        for i in _progress(keep, f"converting {name}"):
            image, label = dataset[i]
            arrays.append(pil_to_array(image, image_size, channels))
            labels.append(int(label))
        return _stack(arrays, [f"{name}[{i}]" for i in keep]), labels, keep

    images, labels, kept = _cached_decode(key_parts, keep, decode, lambda i: None)
    return ImageDataset(images, torch.tensor(labels), dataset.classes, indices=kept)
