"""Datasets as 256-way categorical sub-pixels: the names the notebooks, the CLI and the tests import.

PixelRNN treats an image as a sequence of sub-pixels, each an integer in ``0..255``. Everything here
returns images as ``torch.long`` tensors ``(C, H, W)`` (batches ``(B, C, H, W)``) holding exactly
those integers: no normalisation, no floats, no augmentation.

This module only re-exports. The code lives in the subpackage ``pixelrnn_utils.datasets``, one
concept per module:

* ``datasets.image_dataset`` -- :class:`ImageDataset`, and which of a source's images it holds;
* ``datasets.cache`` -- the decoded-data cache: :func:`cache_dir`, :class:`DataCacheWarning`;
* ``datasets.amat`` -- binarized MNIST's ``.amat`` files: :func:`read_amat`,
  ``BINARIZED_MNIST``, ``BINARIZED_MNIST_SPLITS``;
* ``datasets.folders`` -- image folders: how a file becomes integers (:func:`pil_to_array`: modes,
  RGB / grey, resizing), ``IMAGE_EXTENSIONS``, :class:`CorruptImageWarning` for unreadable files;
* ``datasets.torchvision_sources`` -- CIFAR-10, MNIST, Fashion-MNIST (``TORCHVISION_SOURCES``);
* ``datasets.shipped`` -- the shipped ``.npz`` sets and their damage checks:
  :func:`binarized_mnist_file`, ``FASHION_MNIST_4*``, :func:`fashion_mnist_4_file`,
  :func:`pack_2bit` / :func:`unpack_2bit`, :func:`is_binarized_mnist`, :func:`is_source_name`,
  :func:`is_native_28`;
* ``datasets.levels`` -- :func:`quantize`, :func:`bins_to_grey`, :func:`requantize`,
  :func:`check_levels`, :func:`source_levels`, :func:`with_levels`;
* ``datasets.loading`` -- :func:`load_dataset`, :func:`count_images`, :func:`split_indices`,
  :func:`split_dataset`, :func:`make_loader`.

A test that replaces a function or setting with ``monkeypatch`` patches it in the module that uses
it (``datasets.shipped.fashion_mnist_4_file``, ``datasets.cache._CACHE_MIN_IMAGES``,
``datasets.folders._read_file``): replacing the name re-exported here changes nothing.
"""

from __future__ import annotations

from .datasets.amat import BINARIZED_MNIST, BINARIZED_MNIST_SPLITS, read_amat
from .datasets.cache import DataCacheWarning, cache_dir
from .datasets.folders import IMAGE_EXTENSIONS, CorruptImageWarning, pil_to_array
from .datasets.image_dataset import ImageDataset
from .datasets.levels import (
    bins_to_grey,
    check_levels,
    quantize,
    requantize,
    source_levels,
    with_levels,
)
from .datasets.loading import (
    count_images,
    load_dataset,
    make_loader,
    split_dataset,
    split_indices,
)
from .datasets.shipped import (
    FASHION_MNIST_4,
    FASHION_MNIST_4_SIZES,
    FASHION_MNIST_CLASSES,
    binarized_mnist_file,
    fashion_mnist_4_file,
    is_binarized_mnist,
    is_native_28,
    is_source_name,
    pack_2bit,
    unpack_2bit,
)

# TORCHVISION_SOURCES and project_root live in settings (which imports nothing of the package) and
# are re-exported here, where the notebooks import them from
from .settings import TORCHVISION_SOURCES, project_root

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
