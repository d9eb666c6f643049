"""Test-run setup, loaded by pytest before any test or notebook kernel starts.

Notebook kernels inherit this process's environment, so this is where the run is made small and
offline-safe:

* ``PIXELRNN_SMOKE=1`` unless already set (tiny, CPU-seconds notebooks).
* ``PIXELRNN_DATA``: kept when set (made absolute, since notebooks run with cwd = notebooks/).
  Otherwise: a downloaded CIFAR-10 under ``data/`` is used as is; else the shared JPEG copy
  ``../shared/data/cifar10-train`` when present; else a small synthetic ImageFolder is written to a
  temporary folder, so the tests pass offline anywhere.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _write_synthetic_imagefolder(folder: Path, classes: int = 3, per_class: int = 40) -> None:
    """Smooth random 32x32 RGB PNGs (seeded), one tint per class: ``folder/class_k/nnn.png``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(classes):
        (folder / f"class_{k}").mkdir(parents=True)
        tint = rng.uniform(0.3, 1.0, size=3)
        for i in range(per_class):
            coarse = (rng.uniform(0, 255, size=(4, 4, 3)) * tint).astype(np.uint8)
            image = Image.fromarray(coarse).resize((32, 32), Image.Resampling.BICUBIC)
            image.save(folder / f"class_{k}" / f"{i:03d}.png")


def _choose_data() -> None:
    data = os.environ.get("PIXELRNN_DATA")
    if data:
        if data.lower() not in ("cifar10", "mnist", "fashion_mnist"):  # a path, not a dataset name
            os.environ["PIXELRNN_DATA"] = str(Path(data).expanduser().resolve())
        return
    if (ROOT / "data" / "cifar-10-batches-py").is_dir():
        return  # the notebooks' default, CIFAR-10, is already downloaded
    shared = ROOT.parent / "shared" / "data" / "cifar10-train"
    if shared.is_dir():
        os.environ["PIXELRNN_DATA"] = str(shared.resolve())
        return
    folder = Path(tempfile.mkdtemp(prefix="pixelrnn-synthetic-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _write_synthetic_imagefolder(folder / "images")
    os.environ["PIXELRNN_DATA"] = str(folder / "images")


os.environ.setdefault("PIXELRNN_SMOKE", "1")
_choose_data()

# Tests and notebooks use tiny tensors: one thread is faster and avoids oversubscribing small CI
# machines. Kernels and CLI subprocesses inherit the variable; this process sets torch directly.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
except ImportError:  # pragma: no cover - torch is a dependency
    pass
