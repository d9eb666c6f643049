"""Datasets as 256-way categorical sub-pixels.

PixelRNN treats an image as a sequence of sub-pixels, each an integer in ``0..255``. Everything here
returns images as ``torch.long`` tensors ``(C, H, W)`` (batches ``(B, C, H, W)``) holding exactly
those integers: no normalisation, no floats, no augmentation.

Sources understood by :func:`load_dataset`:

* ``"cifar10"``, ``"mnist"``, ``"fashion_mnist"`` -- torchvision datasets, downloaded into ``root``
  when missing;
* a folder path -- an ImageFolder ``<folder>/<class>/<image>.png|jpg|...`` (class = sub-folder name,
  searched recursively), or a flat folder of images (every image gets label 0).

How a file becomes integers (see :func:`pil_to_array`):

1. Decode with Pillow. Files Pillow cannot decode (corrupt, truncated, not an image) are skipped with a
   :class:`CorruptImageWarning` naming the file; nothing else is lost.
2. Convert to 8-bit RGB (``channels=3``) or 8-bit grey ``L`` (``channels=1``). Grey is replicated
   into R = G = B; RGB becomes grey with Pillow's ``convert("L")`` (ITU-R 601-2 luma). Transparent
   images (``LA``, ``RGBA``, ``PA``, ``P`` with transparency) are composited onto a **white**
   background. 16-bit images (``I;16``, and ``I`` as Pillow decodes 16-bit PNGs) are scaled from
   ``0..65535`` to ``0..255`` with rounding. Float ``F`` images are clipped to ``0..255`` (Pillow's own
   conversion). ``1`` (bilevel) becomes 0 / 255; ``CMYK`` uses Pillow's conversion to RGB.
3. Size: an image that is already ``image_size x image_size`` is kept untouched (a 32x32 PNG
   round-trips to the identical integers). Any other size is resized so that its **shorter side** is
   ``image_size`` (bicubic, Pillow) and then **centre-cropped** to a square. ``image_size=None`` keeps
   the native size (then every image must have the same size).

Decoding 50,000 JPEGs takes several seconds, so large decodes are **cached**: the uint8 arrays are
saved under :func:`cache_dir` (``$PIXELRNN_CACHE``, else ``~/.cache/pixelrnn_utils``), keyed by
everything that determines them -- every file's path, size and modification time (or the
torchvision dataset's files), ``image_size``, ``channels`` and which images were asked for. A
changed folder or changed options therefore never reuse a stale cache, and a cache file that cannot
be read is rebuilt with a :class:`DataCacheWarning`, never trusted. Pass ``indices`` (or ``limit``)
to decode only the images you need.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from .progress import progress_bar

# TORCHVISION_SOURCES and project_root live in settings (which imports nothing of the package) and
# are re-exported here, where the notebooks import them from
from .settings import TORCHVISION_SOURCES, project_root, shown_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "TORCHVISION_SOURCES",
    "CorruptImageWarning",
    "DataCacheWarning",
    "ImageDataset",
    "cache_dir",
    "count_images",
    "split_indices",
    "project_root",
    "load_dataset",
    "pil_to_array",
    "split_dataset",
    "make_loader",
    "requantize",
    "quantize",
    "bins_to_grey",
    "check_levels",
    "BINARIZED_MNIST",
    "BINARIZED_MNIST_SPLITS",
    "binarized_mnist_file",
    "read_amat",
    "source_levels",
    "is_binarized_mnist",
    "with_levels",
    "FASHION_MNIST_4",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_4_SIZES",
    "fashion_mnist_4_file",
    "is_native_28",
    "is_source_name",
    "pack_2bit",
    "unpack_2bit",
]

#: File extensions (lower case) that :func:`load_dataset` reads from an ImageFolder.
IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
)

# Show a progress bar only when decoding at least this many images, updated at most once a second.
_PROGRESS_MIN_IMAGES = 1000
_PROGRESS_INTERVAL_S = 1.0


# Cache decodes of at least this many images (smaller ones take well under a second).
_CACHE_MIN_IMAGES = 1000
_CACHE_FORMAT = "pixelrnn_utils.decoded/1"


class CorruptImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


class DataCacheWarning(UserWarning):
    """A decoded-data cache file was unreadable or could not be written; nothing is lost."""


# ---------------------------------------------------------------------------------------------
# One image -> integers
# ---------------------------------------------------------------------------------------------


def _on_white(image: Image.Image) -> Image.Image:
    """Composite an image with an alpha channel onto a white background; returns RGB."""
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit ``L`` or ``RGB`` (alpha composited onto white)."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _on_white(image)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey: 0..65535 -> 0..255 with rounding (65535 -> 255, 257 * k -> k).
        values = np.asarray(image).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), mode="L")
    if mode in ("1", "F"):
        return image.convert("L")
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...


def _resize_and_crop(image: Image.Image, image_size: int) -> Image.Image:
    """Resize the shorter side to ``image_size`` (bicubic) and centre-crop to a square.

    An image that is already ``image_size x image_size`` is returned unchanged.
    """
    width, height = image.size
    if (width, height) == (image_size, image_size):
        return image
    scale = image_size / min(width, height)
    new_width = max(image_size, round(width * scale))
    new_height = max(image_size, round(height * scale))
    image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left = (new_width - image_size) // 2
    top = (new_height - image_size) // 2
    return image.crop((left, top, left + image_size, top + image_size))


def pil_to_array(image: Image.Image, image_size: int | None = 32, channels: int = 3) -> np.ndarray:
    """Convert a Pillow image to a ``uint8`` array ``(channels, H, W)`` of sub-pixel values.

    See the module docstring for the mode conversions; ``image_size`` resizes the shorter side
    (bicubic) then centre-crops, and leaves an image of the right size untouched.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    image = _to_8bit(image)
    image = image.convert("L" if channels == 1 else "RGB")
    if image_size is not None:
        image = _resize_and_crop(image, image_size)
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        return array[None, :, :].copy()
    return array.transpose(2, 0, 1).copy()


def _read_file(path: Path, image_size: int | None, channels: int) -> np.ndarray | None:
    """Decode one file; returns ``None`` (and warns) when Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here
            return pil_to_array(image, image_size, channels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        warnings.warn(
            f"skipping unreadable image {path}: {type(e).__name__}: {e}",
            CorruptImageWarning,
            stacklevel=3,
        )
        return None


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------


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


def _progress(indices: list[int], desc: str) -> tqdm:
    """A progress bar for long decodes only, refreshed at most once a second."""
    return progress_bar(
        indices,
        desc=desc,
        disable=len(indices) < _PROGRESS_MIN_IMAGES,
        mininterval=_PROGRESS_INTERVAL_S,
    )


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


# ---------------------------------------------------------------------------------------------
# The decoded-data cache
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where decoded datasets are cached: ``$PIXELRNN_CACHE``, else ``~/.cache/pixelrnn_utils``."""
    if os.environ.get("PIXELRNN_CACHE"):
        return Path(os.environ["PIXELRNN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pixelrnn_utils"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _read_cache(key: str) -> dict | None:
    """The cached decode for ``key``, or None. A damaged file is removed with a warning."""
    path = cache_dir() / f"{key[:40]}.pt"
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = state["images"], state["labels"]
        ok = (
            state["format"] == _CACHE_FORMAT
            and state["key"] == key
            and images.dtype == torch.uint8
            and images.dim() == 4
            and len(labels) == len(images) == len(state["kept"])
        )
        if not ok:
            raise ValueError("its contents do not match what was asked for")
        return state
    except Exception as e:  # anything unreadable is rebuilt, never trusted
        warnings.warn(
            f"decoded-data cache {path} is damaged ({type(e).__name__}: {e}); decoding again",
            DataCacheWarning,
            stacklevel=4,
        )
        path.unlink(missing_ok=True)
        return None


def _write_cache(key: str, state: dict) -> None:
    """Write a cache file atomically; a cache that cannot be written only costs time."""
    folder = cache_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".decoded.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": _CACHE_FORMAT, "key": key, **state}, f)
        os.replace(tmp, folder / f"{key[:40]}.pt")
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(
            f"could not write the decoded-data cache in {folder} ({e}); set PIXELRNN_CACHE to a "
            "writable folder to make the next load fast",
            DataCacheWarning,
            stacklevel=4,
        )


def _cached_decode(
    key_parts: dict, keep: list[int], decode, skipped_warning
) -> tuple[torch.Tensor, list[int], list[int]]:
    """Decode ``keep`` with ``decode(keep) -> (images, labels, kept)``, through the cache.

    Returns ``(images uint8 (N, C, H, W), labels, kept source positions)``. A cache of the whole
    source is used for any subset of it. ``skipped_warning(i)`` re-issues the warning for a
    source position that was unreadable when the cache was built.
    """
    everything = _digest({**key_parts, "keep": "all"})
    wanted = _digest({**key_parts, "keep": keep})
    for key in (everything, wanted):
        state = _read_cache(key)
        if state is None:
            continue
        kept = state["kept"].tolist()
        position = {source: k for k, source in enumerate(kept)}
        missing = [i for i in keep if i not in position]
        for i in missing:
            skipped_warning(i)
        rows = [position[i] for i in keep if i in position]
        if not rows:
            raise ValueError("none of the requested images could be decoded")
        return state["images"][rows], state["labels"][rows].tolist(), [kept[r] for r in rows]
    images, labels, kept = decode(keep)
    if len(keep) >= _CACHE_MIN_IMAGES:
        key = everything if len(keep) == key_parts["n"] else wanted
        _write_cache(
            key, {"images": images, "labels": torch.tensor(labels), "kept": torch.tensor(kept)}
        )
    return images, labels, kept


def _stack(arrays: list[np.ndarray], names: list[str]) -> torch.Tensor:
    """Stack ``(C, H, W)`` arrays; a clear error when their sizes differ (``image_size=None``)."""
    first = arrays[0].shape
    for array, name in zip(arrays, names, strict=True):
        if array.shape != first:
            raise ValueError(
                f"images have different sizes ({names[0]} is {first[2]}x{first[1]}, {name} is "
                f"{array.shape[2]}x{array.shape[1]}); pass image_size=<int> to resize them all"
            )
    return torch.from_numpy(np.stack(arrays))


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def _list_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` or below it (not hidden), sorted."""
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def _find_images(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """List the image files of an ImageFolder (or a flat folder) in sorted order."""
    files: list[Path] = []
    labels: list[int] = []
    classes: list[str] = []
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for subfolder in subfolders:
        class_files = _list_files(subfolder)
        if class_files:
            labels += [len(classes)] * len(class_files)
            classes.append(subfolder.name)
            files += class_files
    if not files:  # flat folder: every image gets label 0
        files = sorted(p for p in folder.iterdir() if _is_image(p))
        labels = [0] * len(files)
        classes = [folder.name]
    if not files:
        raise ValueError(
            f"no images found in {folder}. Expected an ImageFolder layout "
            f"root/<class>/<image>.png|jpg|... (or a flat folder of images, all label 0); "
            f"accepted extensions: {', '.join(IMAGE_EXTENSIONS)}"
        )
    return files, labels, classes


def _fingerprint(files: list[Path], folder: Path) -> str:
    """Changes whenever a file is added, removed, renamed, rewritten or touched."""
    stats = []
    for f in files:
        st = f.stat()
        stats.append((str(f.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return _digest(stats)


def _load_image_folder(
    folder: Path,
    image_size: int | None,
    channels: int,
    limit: int | None,
    indices: Sequence[int] | None = None,
) -> ImageDataset:
    """Decode an ImageFolder into memory (skipping unreadable files with a warning), cached."""
    files, labels, classes = _find_images(folder)
    keep = _select(len(files), limit, indices)
    key_parts = {
        "source": str(folder),
        "files": _fingerprint(files, folder),
        "n": len(files),
        "image_size": image_size,
        "channels": channels,
    }

    def decode(keep: list[int]) -> tuple[torch.Tensor, list[int], list[int]]:
        arrays: list[np.ndarray] = []
        kept: list[int] = []
        for i in _progress(keep, f"decoding {folder.name}"):
            array = _read_file(files[i], image_size, channels)
            if array is not None:
                arrays.append(array)
                kept.append(i)
        if not arrays:
            raise ValueError(f"none of the {len(keep)} image files in {folder} could be decoded")
        return _stack(arrays, [str(files[i]) for i in kept]), [labels[i] for i in kept], kept

    def skipped(i: int) -> None:
        warnings.warn(
            f"skipping unreadable image {files[i]} (found unreadable when it was cached)",
            CorruptImageWarning,
            stacklevel=4,
        )

    images, kept_labels, kept = _cached_decode(key_parts, keep, decode, skipped)
    return ImageDataset(
        images, torch.tensor(kept_labels), classes, [files[i] for i in kept], indices=kept
    )


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
# Binarized MNIST: the paper's Table 4 data, shipped with the course
# ---------------------------------------------------------------------------------------------

#: The name of the binarized MNIST source (``--data binarized_mnist``).
BINARIZED_MNIST = "binarized_mnist"
#: Its published splits, used as they are (never re-split): train, valid (model selection), test.
BINARIZED_MNIST_SPLITS = ("train", "valid", "test")
_AMAT = "binarized_mnist_{split}.amat"
_MAT_TYPES = {
    1: "i1",
    2: "u1",
    3: "i2",
    4: "u2",
    5: "i4",
    6: "u4",
    7: "f4",
    9: "f8",
    12: "i8",
    13: "u8",
}
_MI_MATRIX, _MI_COMPRESSED = 14, 15


def binarized_mnist_file() -> Path:
    """The shipped copy: ``data/binarized_mnist.npz``, one ``numpy.packbits`` array per split.

    Made from the ``.amat`` files by ``data/convert_binarized_mnist.py``; ``tests/test_data.py``
    checks every split against the published arrays' md5s.
    """
    return project_root() / "data" / "binarized_mnist.npz"


def _mat_elements(buf: bytes, endian: str):
    """The ``(type, payload)`` data elements of a MATLAB 5 byte string, in order."""
    pos = 0
    while pos + 8 <= len(buf):
        kind, size = struct.unpack_from(endian + "II", buf, pos)
        if kind >> 16:  # "small" element: size in the tag's upper half, payload in its 4 bytes
            yield kind & 0xFFFF, buf[pos + 4 : pos + 4 + (kind >> 16)]
            pos += 8
            continue
        yield kind, buf[pos + 8 : pos + 8 + size]
        pos += 8 + size + (0 if kind == _MI_COMPRESSED else -size % 8)


def read_amat(path: str | Path) -> np.ndarray:
    """The ``(N, 784)`` uint8 array of 0/1 in a binarized MNIST ``.amat`` file.

    Despite the name, these files are MATLAB 5 files holding one matrix ``X``. This reads that
    format directly (no SciPy needed); anything else is refused with an error that says so.
    """
    path = Path(path)
    hint = (
        f"{path} is not a binarized MNIST .amat file (a MATLAB 5 file holding one N x 784 matrix "
        "of 0/1, as the original files data/README.md names); "
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"no file {path}: a binarized MNIST folder holds "
            f"{', '.join(_AMAT.format(split=s) for s in BINARIZED_MNIST_SPLITS)}; or use "
            f"--data {BINARIZED_MNIST}, the copy shipped with the course"
        )
    raw = path.read_bytes()
    if (
        len(raw) < 136
        or not raw.startswith(b"MATLAB 5.0 MAT-file")
        or raw[126:128]
        not in (
            b"IM",
            b"MI",
        )
    ):
        raise ValueError(hint + "it has no MATLAB 5 header")
    endian = "<" if raw[126:128] == b"IM" else ">"
    try:
        for kind, payload in _mat_elements(raw[128:], endian):
            if kind == _MI_COMPRESSED:
                kind, payload = next(_mat_elements(zlib.decompress(payload), endian))
            if kind != _MI_MATRIX:
                continue
            _flags, (_, dims), _name, (real_kind, real) = list(_mat_elements(payload, endian))[:4]
            shape = tuple(np.frombuffer(dims, dtype=endian + "i4"))
            values = np.frombuffer(real, dtype=endian + _MAT_TYPES[real_kind])
            array = values.reshape(shape, order="F")  # MATLAB stores columns first
            break
        else:
            raise ValueError("no matrix in it")
    except (struct.error, zlib.error, KeyError, ValueError, StopIteration) as e:
        raise ValueError(hint + f"it could not be read ({type(e).__name__}: {e})") from e
    if array.ndim != 2 or array.shape[1] != 28 * 28:
        raise ValueError(hint + f"its matrix is {' x '.join(map(str, array.shape))}, not N x 784")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(hint + "its values are not all 0 or 1")
    return np.ascontiguousarray(array, dtype=np.uint8)


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


# ---------------------------------------------------------------------------------------------
# Splits, loaders, quantisation
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
