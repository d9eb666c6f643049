"""The exercise checks of notebook 01, data quantization.

Its exercises are at the end of ``notebooks/01_data_quantization.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..data import requantize
from .feedback import _attempted, _number, _verdict


def check_bits_per_dim_from_nats(answer: float | None) -> bool:
    """A model gives a 32x32 RGB image a total NLL of 6,000 nats: its bits/dim."""
    expected = 6000 / (3 * 32 * 32 * math.log(2))
    return _number(
        answer, expected, "divide by the number of sub-pixels (3 x 32 x 32), then by ln 2"
    )


def check_bits_per_dim_from_unit_scale(answer: float | None) -> bool:
    """-4.80 bits/dim of a continuous model on [0, 1]-scaled images, on the 0..256 scale."""
    return _number(
        answer,
        -4.80 + math.log2(256),
        "the density on [0, 1] is 256 times larger per dimension: add log2(256) = 8 bits",
    )


def check_requantize(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(images, levels)`` must equal ``data.requantize`` on every value 0..255."""
    values = torch.arange(256).view(1, 1, 16, 16)
    # 8 and 32 levels are the ones where rounding q * 255 / (L - 1) differs from truncating it
    for levels in (2, 4, 8, 16, 32, 256):
        mine = fn(values, levels)
        if not _attempted(mine):
            return False
        if not torch.equal(torch.as_tensor(mine).long(), requantize(values, levels)):
            return _verdict(
                False,
                f"with {levels} levels some values differ: bin q = v * levels // 256, "
                "shown as round(q * 255 / (levels - 1)), rounded to the nearest integer, "
                "not truncated",
            )
    return _verdict(True, "")


def check_most_common_value(answer: int | None, images: torch.Tensor) -> bool:
    """The most frequent sub-pixel value in ``images``."""
    expected = int(torch.bincount(images.flatten().long(), minlength=256).argmax())
    return _number(answer, expected, "count every value with torch.bincount, take the argmax")
