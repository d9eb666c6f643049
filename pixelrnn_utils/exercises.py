"""Check cells for the exercises at the end of the notebooks.

Every ``check_*`` function takes the learner's answer (a number, a tensor or a function), prints one
line that says whether it is right, with a hint when it is not, and returns ``True`` or ``False``.
An answer left at ``None`` (or a function that still returns ``None``) counts as not attempted.
The references the answers are checked against are the package's own functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .data import requantize
from .diagonal_bilstm import skew
from .masks import make_mask
from .model import build_model, sequential_steps
from .row_lstm import lstm_update
from .sampling import draw
from .train import TrainConfig, learning_rate

__all__ = [
    "check_bits_per_dim_from_nats",
    "check_bits_per_dim_from_unit_scale",
    "check_requantize",
    "check_most_common_value",
    "check_mask_b",
    "check_mask_a_context",
    "check_lstm_update",
    "check_row_lstm_steps",
    "check_triangle_width",
    "check_skew",
    "check_skewed_width",
    "check_loss_per_pixel_to_bits_per_dim",
    "check_steps_per_epoch",
    "check_cosine_halfway",
    "check_draw",
    "check_temperature_probability",
    "check_completion_steps",
    "check_sequential_steps",
    "check_skip_parameters",
    "check_images_in_equal_time",
]


def _verdict(ok: bool, hint: str) -> bool:
    print("✓ correct" if ok else f"✗ not yet: {hint}")
    return ok


def _attempted(answer: Any) -> bool:
    if answer is None:
        print(
            "… not attempted yet: write your answer in the cell above, run it, then run this cell"
        )
        return False
    return True


def _number(answer: Any, expected: float, hint: str, tol: float = 1e-3) -> bool:
    if not _attempted(answer):
        return False
    return _verdict(abs(float(answer) - expected) <= tol * max(1.0, abs(expected)), hint)


# --- 01 data quantization ------------------------------------------------------------------------


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
    for levels in (2, 4, 16, 256):
        mine = fn(values, levels)
        if not _attempted(mine):
            return False
        if not torch.equal(torch.as_tensor(mine).long(), requantize(values, levels)):
            return _verdict(
                False,
                f"with {levels} levels some values differ: bin q = v * levels // 256, "
                "shown as round(q * 255 / (levels - 1))",
            )
    return _verdict(True, "")


def check_most_common_value(answer: int | None, images: torch.Tensor) -> bool:
    """The most frequent sub-pixel value in ``images``."""
    expected = int(torch.bincount(images.flatten().long(), minlength=256).argmax())
    return _number(answer, expected, "count every value with torch.bincount, take the argmax")


# --- 02 masked convolutions ----------------------------------------------------------------------


def check_mask_b(mask: torch.Tensor | None) -> bool:
    """The 3x3 mask B of a grey (one colour group) convolution, as a (3, 3) tensor of 0/1."""
    if not _attempted(mask):
        return False
    expected = make_mask(1, 1, (3, 3), "B", 1)[0, 0]
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.shape != (3, 3):
        return _verdict(False, f"a 3 x 3 tensor, got shape {tuple(mask.shape)}")
    return _verdict(
        torch.equal(mask, expected),
        "the row above is visible, the left neighbour is visible, mask B lets the centre see "
        "itself (one group), nothing right of or below the centre",
    )


def check_mask_a_context(answer: int | None) -> bool:
    """Input pixels one 3x3 mask-A convolution lets a grey pixel away from the border see."""
    return _number(answer, 4, "three pixels in the row above, one to the left, not itself")


# --- 03 Row LSTM ---------------------------------------------------------------------------------


def check_lstm_update(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """``fn(gates, c_prev) -> (h, c)`` with gates [o, f, i, g] stacked on dim 1."""
    generator = torch.Generator().manual_seed(0)
    gates = torch.randn(2, 4 * 5, 7, generator=generator)
    c_prev = torch.randn(2, 5, 7, generator=generator)
    mine = fn(gates, c_prev)
    if not _attempted(mine) or not _attempted(mine[0]):
        return False
    h, c = lstm_update(gates, c_prev)
    ok = torch.allclose(mine[1], c, atol=1e-6) and torch.allclose(mine[0], h, atol=1e-6)
    return _verdict(
        ok,
        "sigmoid for o, f, i; tanh for g; c = f * c_prev + i * g; h = o * tanh(c); "
        "gates.chunk(4, dim=1) gives o, f, i, g in that order",
    )


def check_row_lstm_steps(answer: int | None) -> bool:
    """Sequential steps of one Row LSTM layer on a 32 x 48 (H x W) image."""
    return _number(answer, 32, "one step per row: the whole row is computed at once")


def check_triangle_width(answer: int | None) -> bool:
    """Pixels of row i - 2 that one Row LSTM layer (k = 3, no stem) lets pixel (i, j) see."""
    return _number(
        answer,
        5,
        "each row up adds one pixel on each side: row i - 1 gives 3 (the state-to-state "
        "kernel), row i - 2 one more on each side",
    )


# --- 04 Diagonal BiLSTM --------------------------------------------------------------------------


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
    """Columns of the skewed map of a 32 x 32 image (= sequential steps per direction)."""
    return _number(answer, 63, "W + H - 1")


# --- 05 training ---------------------------------------------------------------------------------


def check_loss_per_pixel_to_bits_per_dim(answer: float | None) -> bool:
    """A loss of 7.58 nats per pixel, summed over R, G and B, in bits/dim."""
    return _number(
        answer,
        7.58 / 3 / math.log(2),
        "a pixel is 3 sub-pixels: divide by 3 for nats per sub-pixel, then by ln 2 for bits",
    )


def check_steps_per_epoch(answer: int | None) -> bool:
    """Optimizer steps in one epoch of 45,000 images in batches of 16 (the last batch is partial)."""
    return _number(
        answer,
        math.ceil(45000 / 16),
        "45,000 / 16 is not a whole number: the last, smaller batch is a step too (round up)",
        tol=0,
    )


def check_cosine_halfway(answer: float | None) -> bool:
    """The cosine schedule's learning rate halfway through a run that starts at 1e-3."""
    expected = learning_rate(TrainConfig(lr=1e-3, lr_schedule="cosine"), 500, 1000)
    return _number(
        answer,
        expected,
        "lr * (1 + cos(pi * step / total)) / 2 with step / total = 1/2",
        tol=1e-6,
    )


# --- 06 sampling ---------------------------------------------------------------------------------


def check_draw(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(logits, u)``: inverse-CDF draw, the first value whose cumulative probability exceeds u."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 256, generator=generator) * 3
    u = torch.rand(64, generator=generator)
    mine = fn(logits, u)
    if not _attempted(mine):
        return False
    mine = torch.as_tensor(mine).long()
    return _verdict(
        torch.equal(mine, draw(logits, u)),
        "softmax, then cumsum over the 256 values, then the first index whose cumulative "
        "probability is above u (torch.searchsorted does it)",
    )


def check_temperature_probability(answer: float | None) -> bool:
    """The most likely value's probability for p = (0.5, 0.3, 0.2) at temperature 0.5."""
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    expected = float(torch.softmax(p.log() / 0.5, dim=0)[0])
    return _number(
        answer,
        expected,
        "p_T(v) is proportional to p(v) ** (1 / T): square the probabilities, then normalise",
    )


def check_completion_steps(answer: int | None) -> bool:
    """Sub-pixels drawn when the top half of a 32 x 32 RGB image is given."""
    return _number(
        answer, 3 * 16 * 32, "16 rows of 32 pixels are missing, 3 sub-pixels each", tol=0
    )


# --- 07 comparing architectures ------------------------------------------------------------------


def check_sequential_steps(answer: dict[str, int] | None) -> bool:
    """Sequential steps of one layer on a 64 x 64 image, per architecture (as this package runs it)."""
    if not _attempted(answer):
        return False
    expected = {
        arch: sequential_steps(arch, 64, 64) for arch in ("pixelcnn", "row_lstm", "diagonal_bilstm")
    }
    wrong = [arch for arch in expected if answer.get(arch) != expected[arch]]
    return _verdict(
        not wrong,
        f"check {', '.join(wrong)}: PixelCNN computes every position at once, the Row LSTM one row "
        "per step, the Diagonal BiLSTM one column of the skewed map per step, its two directions "
        "side by side in the same steps",
    )


def check_skip_parameters(answer: int | None) -> bool:
    """Parameters that ``skip=True`` adds to a Row LSTM with hidden 32 and 2 layers."""

    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    expected = count(build_model("row_lstm", 3, 32, 2, skip=True)) - count(
        build_model("row_lstm", 3, 32, 2)
    )
    return _number(
        answer,
        expected,
        "one 1x1 convolution per layer, 2h -> 2h features: a weight per (input, output) pair "
        "plus one bias per output (masked weights still count as parameters)",
        tol=0,
    )


def check_images_in_equal_time(
    answer: float | None, fast_rate: float, slow_rate: float, slow_images: int
) -> bool:
    """Images the faster model sees in the time the slower one takes for ``slow_images``."""
    expected = slow_images / slow_rate * fast_rate
    return _number(
        answer,
        expected,
        "time = images / (images per second) for the slow model; multiply by the fast rate",
        tol=0.01,
    )
