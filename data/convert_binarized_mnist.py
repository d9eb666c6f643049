"""Make ``data/binarized_mnist.npz``, the course's copy of binarized MNIST, from the ``.amat`` files.

    python data/convert_binarized_mnist.py ../shared/data/binarized-mnist

Each split (train 50,000 / valid 10,000 / test 10,000 images of 28 x 28 values 0/1) is stored with
``numpy.packbits`` along the pixels (98 bytes per image) in one compressed ``.npz``. The arrays'
md5s are checked before writing: the published ones (its README), which ``tests/test_data.py``
checks again on the shipped file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from pixelrnn_utils.data import BINARIZED_MNIST_SPLITS, binarized_mnist_file, read_amat

MD5 = {
    "train": "8d4f0427d6c2572b5e9994e08bad66de",
    "valid": "3e33becd40c694040e5e6c812e2f4b50",
    "test": "fc34623e13bd64fed2f8b61365198339",
}


def main(folder: str) -> None:
    packed = {}
    for split in BINARIZED_MNIST_SPLITS:
        array = read_amat(Path(folder) / f"binarized_mnist_{split}.amat")
        digest = hashlib.md5(array.tobytes()).hexdigest()
        if digest != MD5[split]:
            raise SystemExit(
                f"{split}: md5 {digest}, expected {MD5[split]}: not the published data"
            )
        packed[split] = np.packbits(array, axis=1)
        print(f"{split}: {array.shape[0]} images, md5 {digest} ok")
    out = binarized_mnist_file()
    np.savez_compressed(out, **packed)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/binarized-mnist")
