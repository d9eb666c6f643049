"""Binarized MNIST's original ``.amat`` files (MATLAB 5), read without SciPy.

Also the names the binarized MNIST source goes by: :data:`BINARIZED_MNIST` (``--data
binarized_mnist``) and its published splits, one ``binarized_mnist_<split>.amat`` file each. The copy
shipped with the course (``data/binarized_mnist.npz``, made from these files) is read by
``datasets.shipped``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["BINARIZED_MNIST", "BINARIZED_MNIST_SPLITS", "read_amat"]

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

# ---------------------------------------------------------------------------------------------
# Reading a MATLAB 5 file
# ---------------------------------------------------------------------------------------------


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
