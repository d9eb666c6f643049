"""Make ``data/fashion_mnist_4.npz``, the course's offline copy of Fashion-MNIST at 4 levels.

    python data/convert_fashion_mnist.py ../shared/data/fashion-mnist

Fashion-MNIST (Zalando, MIT licence): 28 x 28 grey garments in 10 classes. The course ships
what notebook 09 needs, quantised to 4 levels (``data.quantize``: value v -> bin v * 4 // 256):
the first 12,000 training images (about 1,200 per class) and all 10,000 test images, with their
labels. Four 2-bit values are packed into one byte (196 bytes per image). The idx files' md5s
(decompressed) are checked first, and the quantised arrays' md5s after, against the ones below,
which ``tests/test_conditioning.py`` checks again on the shipped file.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

from pixelrnn_utils.data import FASHION_MNIST_4_SIZES, fashion_mnist_4_file, pack_2bit

IDX_MD5 = {  # of the decompressed idx files, from the dataset's README
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# of the shipped (N, 784) uint8 arrays of bins 0..3 and the (N,) uint8 labels
MD5 = {
    "train_images": "b9c84edce200a5b4b2d1c6ce74dd4385",
    "train_labels": "59533ceadb95213cc7f8bab687acac8c",
    "test_images": "d5a29366a01c3d5e16870dbc9f967880",
    "test_labels": "8dea97a4e78c1bd1b5a6e8efbb870b6e",
}


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    name = path.name.removesuffix(".gz")
    if hashlib.md5(raw).hexdigest() != IDX_MD5[name]:
        raise SystemExit(f"{path}: not the published Fashion-MNIST file (md5 differs)")
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main(folder: str) -> None:
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(Path(folder) / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(Path(folder) / f"{prefix}-labels-idx1-ubyte.gz")
        n = FASHION_MNIST_4_SIZES[split]
        bins = (images[:n].reshape(n, 784).astype(np.int64) * 4 // 256).astype(np.uint8)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = bins, labels[:n].copy()
    for name, array in arrays.items():
        digest = hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest()
        if digest != MD5[name]:
            raise SystemExit(f"{name}: md5 {digest}, expected {MD5[name]}")
        print(f"{name}: {array.shape}, md5 {digest}")
    out = fashion_mnist_4_file()
    np.savez_compressed(
        out,
        train_images=pack_2bit(arrays["train_images"]),
        train_labels=arrays["train_labels"],
        test_images=pack_2bit(arrays["test_images"]),
        test_labels=arrays["test_labels"],
    )
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fashion-mnist")
