"""Image folders: files decoded into sub-pixel integers, converted, resized, unreadable ones skipped.

A folder source is an ImageFolder ``<folder>/<class>/<image>.png|jpg|...`` (class = sub-folder name,
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

Decodes of many images go through the decoded-data cache (``datasets.cache``). The torchvision
sources (``datasets.torchvision_sources``) convert their images with the same :func:`pil_to_array`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..progress import progress_bar
from .cache import _cached_decode, _fingerprint
from .image_dataset import ImageDataset, _select

__all__ = ["IMAGE_EXTENSIONS", "CorruptImageWarning", "pil_to_array"]

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


class CorruptImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


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
# A folder of files -> one ImageDataset
# ---------------------------------------------------------------------------------------------


def _progress(indices: list[int], desc: str) -> tqdm:
    """A progress bar for long decodes only, refreshed at most once a second."""
    return progress_bar(
        indices,
        desc=desc,
        disable=len(indices) < _PROGRESS_MIN_IMAGES,
        mininterval=_PROGRESS_INTERVAL_S,
    )


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
