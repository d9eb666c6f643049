"""The PixelCNN baseline (paper §3.5, Figure 5).

PixelCNN replaces the recurrence by a stack of masked convolutions: fast to train (every pixel in
parallel) but each output only sees a bounded region, and stacked 3x3 masks leave a **blind spot**
to the upper right that no depth fixes. Each residual block is ReLU -> 1x1 (2h -> h) -> ReLU ->
masked 3x3 (h -> h) -> ReLU -> 1x1 (h -> 2h), added to its input; all convolutions use mask B.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import MaskedConv2d

__all__ = ["PixelCNNBlock"]


class PixelCNNBlock(nn.Module):
    """Residual block of masked convolutions: ``(B, 2h, H, W) -> (B, 2h, H, W)``."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        colour_groups: int = 3,
        kernel_size: int = 3,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(channels, hidden, 1, "B", colour_groups),
            nn.ReLU(),
            MaskedConv2d(hidden, hidden, kernel_size, "B", colour_groups),
            nn.ReLU(),
            MaskedConv2d(hidden, channels, 1, "B", colour_groups),
        )

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """``image`` is unused: every layer takes ``(features, image)`` (see ``model.py``)."""
        out = self.body(x)
        return x + out if self.residual else out
