"""The exercise checks of notebook 04, the Diagonal BiLSTM.

Its exercises are at the end of ``notebooks/04_diagonal_bilstm.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..diagonal_bilstm import skew, unskew
from .feedback import _attempted, _number, _verdict


def check_skew(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """``fn(x)`` skews an (H, W) tensor to (H, W + H - 1): row r shifted right by r."""
    x = torch.arange(1, 13, dtype=torch.float32).view(3, 4)
    mine = fn(x)
    if not _attempted(mine):
        return False
    expected = skew(x[None, None])[0, 0]
    mine = torch.as_tensor(mine, dtype=torch.float32)
    if mine.shape != expected.shape:
        return _verdict(False, f"shape should be {tuple(expected.shape)}, got {tuple(mine.shape)}")
    return _verdict(torch.equal(mine, expected), "row r starts at column r; zeros elsewhere")


def check_skewed_width(answer: int | None) -> bool:
    """Columns of the skewed map of an image of 20 rows and 36 columns (= sequential steps of one
    direction of a Diagonal BiLSTM layer)."""
    return _number(
        answer,
        36 + 20 - 1,
        "row r is shifted right by r: the last row, r = H - 1, ends in column (W - 1) + (H - 1); "
        "W + H - 1 columns (2W - 1 only for a square image)",
        tol=0,
    )


def check_unskew(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(y)`` unskews an (H, W + H - 1) tensor back to (H, W): row r read from column r on."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    for H, W in ((3, 4), (5, 2), (4, 4)):
        y = skew(torch.randn(1, 1, H, W, generator=generator))[0, 0]
        y = y + (skew(torch.ones(1, 1, H, W))[0, 0] == 0) * 9.0  # outside the image: not zero
        mine = fn(y)
        if not _attempted(mine):
            return False
        mine = torch.as_tensor(mine, dtype=torch.float32)
        expected = unskew(y[None, None])[0, 0]
        if mine.shape != expected.shape:
            return _verdict(
                False,
                f"a {H} x {W + H - 1} map unskews to {tuple(expected.shape)}, got "
                f"{tuple(mine.shape)}: W = columns - H + 1",
            )
        if not torch.equal(mine, expected):
            return _verdict(
                False,
                f"on a {H} x {W + H - 1} map some values differ: row r of the image is columns "
                "r .. r + W - 1 of row r of the skewed map",
            )
    return _verdict(True, "")


def shift_down(right: torch.Tensor) -> torch.Tensor:
    """The right-to-left map ``(B, h, H, W)`` moved down one row: row r receives row r - 1 and
    row 0 the state above the image (zero), as ``DiagonalBiLSTM.right_map`` does."""
    return F.pad(right, (0, 0, 1, 0))[:, :, :-1]


def check_shift_down(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(right)`` shifts a ``(B, h, H, W)`` map down by one row, zeros in row 0."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    right = torch.randn(2, 3, 5, 4, generator=generator)
    mine = fn(right)
    if not _attempted(mine):
        return False
    mine = torch.as_tensor(mine, dtype=torch.float32)
    expected = shift_down(right)
    if mine.shape != expected.shape:
        return _verdict(
            False,
            f"the shape must not change: {tuple(expected.shape)}, got {tuple(mine.shape)} "
            "(add a row of zeros on top, then drop the last row)",
        )
    if torch.equal(mine, F.pad(right, (0, 0, 0, 1))[:, :, 1:]):
        return _verdict(False, "that moves the map up: row r must receive row r - 1")
    return _verdict(
        torch.equal(mine, expected),
        "row r of the result is row r - 1 of the map (dim 2 is the row); row 0 is zero",
    )
