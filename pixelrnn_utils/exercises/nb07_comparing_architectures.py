"""The exercise checks of notebook 07, comparing architectures.

Its exercises are at the end of ``notebooks/07_comparing_architectures.ipynb``.
"""

from __future__ import annotations

import torch

from ..model import build_model, sequential_steps
from .feedback import _attempted, _number, _verdict


def check_sequential_steps(answer: dict[str, int] | None) -> bool:
    """Sequential steps of one layer on a 64 x 64 image, per architecture (as this package runs it)."""
    if not _attempted(answer):
        return False
    expected = {
        arch: sequential_steps(arch, 64, 64) for arch in ("pixelcnn", "row_lstm", "diagonal_bilstm")
    }
    wrong = [arch for arch in expected if answer.get(arch) != expected[arch]]
    together = expected["diagonal_bilstm"] == 64 + 64 - 1
    return _verdict(
        not wrong,
        f"check {', '.join(wrong)}: PixelCNN computes every position at once, the Row LSTM one row "
        "per step, the Diagonal BiLSTM one column of the skewed map per step in each of its two "
        "directions, which this package runs "
        + ("together, in one recurrence" if together else "one after the other"),
    )


def check_skip_parameters(answer: int | None) -> bool:
    """Parameters that ``skip=True`` adds to the seed configuration (Row LSTM, hidden 64, 4 layers)."""

    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    expected = count(build_model("row_lstm", 3, 64, 4, skip=True)) - count(
        build_model("row_lstm", 3, 64, 4)
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
