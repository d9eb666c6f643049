"""The datasets shipped with the course as ``.npz`` files, and the checks that find them damaged.

* binarized MNIST (``data/binarized_mnist.npz``): the paper's Table 4 data, 28x28, values 0/1, no
  labels; also read from a folder of its original ``.amat`` files (``datasets.amat``);
* ``fashion_mnist_4`` (``data/fashion_mnist_4.npz``): notebook 09's class-conditional data, 28x28
  Fashion-MNIST in 4 levels, labels 0..9.

A missing or damaged shipped file (truncated, a split missing, a text file, a Git LFS pointer) raises
one clear error that says how to restore it (:func:`_shipped_arrays`). Also here: which names are
built-in sources (:func:`is_source_name`) and which are 28x28 grey (:func:`is_native_28`).
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..settings import TORCHVISION_SOURCES, project_root, shown_path
from .amat import _AMAT, BINARIZED_MNIST, BINARIZED_MNIST_SPLITS, read_amat
from .image_dataset import ImageDataset, _select

__all__ = [
    "binarized_mnist_file",
    "is_binarized_mnist",
    "FASHION_MNIST_4",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_4_SIZES",
    "fashion_mnist_4_file",
    "is_native_28",
    "is_source_name",
    "pack_2bit",
    "unpack_2bit",
]

# ---------------------------------------------------------------------------------------------
# Binarized MNIST: the paper's Table 4 data, shipped with the course
# ---------------------------------------------------------------------------------------------


def binarized_mnist_file() -> Path:
    """The shipped copy: ``data/binarized_mnist.npz``, one ``numpy.packbits`` array per split.

    Made from the ``.amat`` files by ``data/convert_binarized_mnist.py``; ``tests/test_data.py``
    checks every split against the published arrays' md5s.
    """
    return project_root() / "data" / "binarized_mnist.npz"


def is_binarized_mnist(source: str | Path) -> bool:
    """True for the name ``binarized_mnist`` and for a folder holding the ``.amat`` files."""
    if isinstance(source, str) and source.lower() == BINARIZED_MNIST:
        return True
    folder = Path(source).expanduser()
    return folder.is_dir() and (folder / _AMAT.format(split="train")).is_file()


def _shipped_arrays(path: Path, name: str, keys: list[str], instead: str) -> list[np.ndarray]:
    """The arrays ``keys`` of a data file shipped with the course, or one clear error.

    A missing or damaged file (truncated, a split missing, replaced by a text file or a Git LFS
    pointer) says how to restore it. NumPy's own message for a file that is not an archive
    suggests ``allow_pickle=True``, which would run code from the file: never shown.
    """
    restore = f"restore it with `git checkout {shown_path(path)}` in the repository, or {instead}"
    if not path.is_file():
        raise FileNotFoundError(f"the shipped {name} ({shown_path(path)}) is missing: {restore}")
    damaged = f"the shipped {name} ({shown_path(path)}) is damaged"
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in keys if key not in arrays.files]
            if not missing:
                return [arrays[key] for key in keys]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        with path.open("rb") as f:
            if f.read(40).startswith(b"version https://git-lfs"):
                raise ValueError(
                    f"{damaged} (a Git LFS pointer, not the data): fetch it with `git lfs pull`, "
                    f"or {instead}"
                ) from e
        raise ValueError(f"{damaged} (not a complete NumPy .npz archive): {restore}") from e
    raise ValueError(f"{damaged} (it has no {missing[0]!r} array): {restore}")


def _binarized_mnist_split(source: str | Path, split: str) -> np.ndarray:
    """One split as ``(N, 784)`` uint8 0/1: from the shipped file, or from a folder of ``.amat``."""
    if split not in BINARIZED_MNIST_SPLITS:
        raise ValueError(
            f"binarized MNIST has the splits {', '.join(BINARIZED_MNIST_SPLITS)}, not {split!r}"
        )
    if isinstance(source, str) and source.lower() == BINARIZED_MNIST:
        folder = (
            f"point --data at a folder holding the {_AMAT.format(split='{train,valid,test}')} files"
        )
        (packed,) = _shipped_arrays(binarized_mnist_file(), "binarized MNIST", [split], folder)
        return np.unpackbits(packed, axis=1, count=28 * 28)
    return read_amat(Path(source).expanduser() / _AMAT.format(split=split))


def _check_grey_28(name: str, levels: int, channels: int, image_size: int | None) -> None:
    """Refuse another size or colour for a shipped 28x28 grey source; say what to pass."""
    if channels != 1 or image_size not in (None, 28):
        raise ValueError(
            f"{name} is 28x28 grey with {levels} levels: use channels=1 and image_size=28 "
            "(CLI: --channels 1 --image-size 28, the defaults for this data)"
        )


def _load_binarized_mnist(
    source: str | Path,
    split: str,
    image_size: int | None,
    channels: int,
    limit: int | None,
    indices: Sequence[int] | None,
) -> ImageDataset:
    """Binarized MNIST as a 2-level dataset: ``(1, 28, 28)`` images of 0/1, no labels (-1)."""
    _check_grey_28("binarized MNIST", 2, channels, image_size)
    array = _binarized_mnist_split(source, split)
    keep = _select(len(array), limit, indices)
    images = torch.from_numpy(array[keep]).view(-1, 1, 28, 28)
    labels = torch.full((len(keep),), -1, dtype=torch.long)
    return ImageDataset(images, labels, [], indices=keep, levels=2)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST at 4 levels, with labels: notebook 09's class-conditional data, shipped
# ---------------------------------------------------------------------------------------------

#: The name of the shipped Fashion-MNIST subset (``--data fashion_mnist_4``).
FASHION_MNIST_4 = "fashion_mnist_4"
#: How many images each split of it holds: the first 12,000 training images, all test images.
FASHION_MNIST_4_SIZES = {"train": 12_000, "test": 10_000}
#: Fashion-MNIST's class names, label 0..9.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def fashion_mnist_4_file() -> Path:
    """The shipped copy: ``data/fashion_mnist_4.npz`` (made by ``data/convert_fashion_mnist.py``)."""
    return project_root() / "data" / "fashion_mnist_4.npz"


def pack_2bit(bins: np.ndarray) -> np.ndarray:
    """``(N, 784)`` uint8 values 0..3 -> ``(N, 196)`` bytes, four values per byte (first: high bits)."""
    b = bins.reshape(bins.shape[0], -1, 4).astype(np.uint8)
    return (b[..., 0] << 6) | (b[..., 1] << 4) | (b[..., 2] << 2) | b[..., 3]


def unpack_2bit(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_2bit`: ``(N, 196)`` bytes -> ``(N, 784)`` values 0..3."""
    shifts = np.array([6, 4, 2, 0], dtype=np.uint8)
    return ((packed[..., None] >> shifts) & 3).reshape(packed.shape[0], -1)


def is_source_name(source: str | Path) -> bool:
    """True for the names of the built-in datasets (torchvision's and the shipped ones), which
    :func:`load_dataset` reads instead of a folder of the same name (``./NAME`` is the folder)."""
    names = (*TORCHVISION_SOURCES, BINARIZED_MNIST, FASHION_MNIST_4)
    return isinstance(source, str) and source.lower() in names


def is_native_28(source: str | Path) -> bool:
    """True for the shipped 28x28 grey sources (binarized MNIST, ``fashion_mnist_4``): their
    CLI defaults are ``--channels 1 --image-size 28``."""
    return is_binarized_mnist(source) or _is_fashion_mnist_4(source)


def _is_fashion_mnist_4(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower() == FASHION_MNIST_4


def _load_fashion_mnist_4(
    train: bool,
    image_size: int | None,
    channels: int,
    limit: int | None,
    indices: Sequence[int] | None,
) -> ImageDataset:
    """The shipped Fashion-MNIST subset: ``(1, 28, 28)`` images of bins 0..3, labels 0..9."""
    _check_grey_28(FASHION_MNIST_4, 4, channels, image_size)
    split = "train" if train else "test"
    packed, labels = _shipped_arrays(
        fashion_mnist_4_file(),
        "Fashion-MNIST subset",
        [f"{split}_images", f"{split}_labels"],
        "use --data fashion_mnist (torchvision)",
    )
    keep = _select(len(packed), limit, indices)
    images = torch.from_numpy(unpack_2bit(packed[keep])).view(-1, 1, 28, 28)
    return ImageDataset(
        images,
        torch.from_numpy(labels[keep].astype(np.int64)),
        FASHION_MNIST_CLASSES,
        indices=keep,
        levels=4,
    )
