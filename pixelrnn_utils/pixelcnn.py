"""The PixelCNN baseline (paper §3.5, Figure 5).

PixelCNN replaces the recurrence by a stack of masked convolutions: fast to train (every pixel in
parallel) but each output only sees a bounded region, and stacked 3x3 masks leave a **blind spot**
to the upper right that no depth fixes. Each residual block is ReLU -> 1x1 (2h -> h) -> ReLU ->
masked 3x3 (h -> h) -> ReLU -> 1x1 (h -> 2h), added to its input; all convolutions use mask B.
With ``condition_channels=c`` (paper §3.6's bias, see ``conditioning.py``) the block's own 1x1
unmasked convolution ``condition_bias`` maps the c x H x W conditioning map to h x H x W, added to
the masked 3x3 convolution's output: the block's one masked map of its input, as input-to-state is
the LSTM's.
"""

from __future__ import annotations

import torch
from torch import nn

from .conditioning import condition_bias_conv
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
        condition_channels: int | None = None,
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
        self.condition_bias = condition_bias_conv(condition_channels, hidden)

    def forward(
        self,
        x: torch.Tensor,
        image: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``image`` is unused: every layer takes ``(features, image, condition)`` (``model.py``)."""
        if condition is None:
            out = self.body(x)
        else:  # body[3] is the masked 3x3 convolution: the bias is added to its output
            out = self.body[4:](self.body[:4](x) + self.condition_bias(condition))
        return x + out if self.residual else out
