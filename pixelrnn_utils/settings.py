"""Run-wide settings shared by the notebooks, the CLI and the tests.

* ``PIXELRNN_SMOKE=1`` shrinks every notebook and CLI default to a CPU-seconds run (CI sets it).
* ``PIXELRNN_DATA=/path/to/imagefolder`` replaces the default dataset (CIFAR-10, downloaded).

Also where things are: :func:`project_root` and :func:`shown_path`. This module imports nothing
from the package, so every other module may import it (``data`` re-exports ``project_root`` and
``TORCHVISION_SOURCES``).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "TORCHVISION_SOURCES",
    "project_root",
    "smoke",
    "data_source",
    "default_device",
    "exact_float32",
    "seed_everything",
    "shown_path",
    "shown_source",
    "values_checked",
    "reads_values",
]


#: Dataset names that :func:`~pixelrnn_utils.data.load_dataset` fetches with torchvision.
TORCHVISION_SOURCES = ("cifar10", "mnist", "fashion_mnist")


def project_root() -> Path:
    """The folder that holds the ``pixelrnn_utils`` package (the repository root when installed
    editable, as the course does)."""
    return Path(__file__).resolve().parent.parent


def smoke() -> bool:
    """True when ``PIXELRNN_SMOKE`` asks for a tiny, CPU-seconds run."""
    return os.environ.get("PIXELRNN_SMOKE", "0").strip().lower() not in ("", "0", "false", "no")


def data_source(default: str = "cifar10") -> str:
    """The dataset to use: ``PIXELRNN_DATA`` when set, else ``default``."""
    return os.environ.get("PIXELRNN_DATA") or default


_values_checked = False  # True inside values_checked()


@contextlib.contextmanager
def values_checked() -> Iterator[None]:
    """Inside: the images and labels given to the models and the loss were checked where their
    batch was made (on the CPU), so the models and the loss read no tensor's values to check
    them again.

    Reading a value of a GPU tensor (``int(x.min())``, ``if labels.max() >= K``) makes the CPU
    wait for every kernel queued before it: a host sync, which stalls the launch queue of a
    training step, breaks a CUDA graph's capture, and cannot be traced by ``torch.compile``.
    Outside (a notebook calling ``model(x)``), the checks run and name what is wrong.
    """
    global _values_checked
    before, _values_checked = _values_checked, True
    try:
        yield
    finally:
        _values_checked = before


def reads_values() -> bool:
    """Whether the models and the loss may read tensor values to check them: not inside
    :func:`values_checked`, and not while ``torch.compile`` traces."""
    return not (_values_checked or torch.compiler.is_compiling())


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Float32 that is float32 on a GPU too: TF32 off for cuDNN convolutions and CUDA matmuls.

    On Ampere and later GPUs PyTorch runs float32 convolutions in TF32 (10-bit mantissa) by
    default. The course promises exact float32 where it says so (``evaluate``, ``precision="fp32"``
    training, naive == cached samples), so those run inside this block; the previous settings
    are restored after it. Also a decorator. No effect on CPUs.
    """
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); returns a CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def shown_path(path: str | os.PathLike) -> str:
    """A path as a notebook should print it: relative to the repository (``runs/x``), to the
    folder that holds it (``../images``, a folder next to the repository) or to the home folder
    (``~/data``), never this machine's absolute path."""
    if str(path).lower() in TORCHVISION_SOURCES:  # a dataset name, not a path
        return str(path)
    path = Path(path).expanduser()
    root = project_root()
    # as written (a folder next to the repository may be a symbolic link), then with links followed
    for candidate in (Path(os.path.abspath(path)), path.resolve()):
        for base, prefix in ((root, ""), (root.parent, "../"), (Path.home(), "~/")):
            if candidate == base:
                return prefix.rstrip("/") or "."
            if candidate.is_relative_to(base):
                return prefix + candidate.relative_to(base).as_posix()
    return path.name


def shown_source(source: str | os.PathLike) -> str:
    """A dataset as a notebook prints it: a name (``cifar10``, ``binarized_mnist``) as it is, a
    folder of images by its name alone (``image folder 'cifar10-train'``). Where the folder lies
    is this machine's business: a learner reading the stored output has no such folder."""
    text = str(source)
    if "/" not in text and os.sep not in text and not Path(text).is_dir():  # a dataset's name
        return text
    return f"image folder {Path(text).expanduser().name!r}"
