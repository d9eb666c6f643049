"""The Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders", arXiv 1606.05328): PixelCNN without the blind spot, with LSTM-like gates.

PixelCNN's stacked masked k x k convolutions never see a triangle above and to the right of each
pixel (notebook 02). The Gated PixelCNN splits every layer into two stacks:

* the **vertical stack** sees only the rows *above* the pixel, and all of their width: its input
  is the image through :class:`VerticalConv2d` with ``include_centre_row=False`` (the model's
  ``vertical_stem``: rows i - 3 .. i - 1, seven columns), and each layer's vertical convolution
  covers rows i - k//2 .. i of the vertical features, k columns wide, centred. Row i of the
  vertical features depends on image rows before i only, so no mask inside a row is needed, and
  every column of that row may be read: nothing is blind;
* the **horizontal stack** sees the pixel's own row, left of it: a 1 x k masked convolution
  (columns j - k//2 .. j, mask B: the R -> G -> B colour groups of the course's other layers),
  plus the vertical stack's pre-activations at (i, j) through a 1x1 convolution
  (``vertical_to_horizontal``). That 1x1 is unmasked: every channel of the vertical stack sees
  only rows above, which every sub-pixel of (i, j) may read.

Both stacks use the **gated activation** tanh(W_f * x) ⊙ σ(W_g * x): each convolution gives 2n
maps, the first n through tanh, the second n through the sigmoid gate (:func:`gated`). The
horizontal stack's gated output goes through a masked 1x1 (``output``) and is added to its input
(the **residual** connection); the vertical stack has none. With a condition (a class, or the
small image of a Multi-Scale model) each layer's ``condition_bias`` (a 1x1 of the conditioning
map, see ``conditioning.py``) adds a bias to every gate of both stacks: the paper's
tanh(W_f * x + V_f^T h) ⊙ σ(W_g * x + V_g^T h).

Layers carry ``(vertical, horizontal)``, each ``(B, 2h, H, W)``; the horizontal stack is what
the head (and the skip connections) read. The model (``model.GatedPixelCNN``) keeps PixelRNN's
7x7 mask-A stem as the horizontal stack's input, so the head, loss and samplers are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import condition_bias_conv
from .masks import MaskedConv2d

__all__ = ["GatedBlock", "VerticalConv2d", "gated"]


def gated(x: torch.Tensor) -> torch.Tensor:
    """The gated activation: ``(B, 2n, ...)`` -> ``tanh(first n) * sigmoid(last n)``, ``(B, n, ...)``."""
    f, g = x.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class VerticalConv2d(nn.Conv2d):
    """A k-wide convolution over the rows above (i, j): rows i - k//2 .. i - 1, and row i itself
    when ``include_centre_row``; columns j - k//2 .. j + k//2. ``(B, in, H, W) -> (B, out, H, W)``.

    The kernel holds only those rows (``k//2`` or ``k//2 + 1`` of them), so no mask is needed.
    Applied to rows a .. b of a map it gives, at its last output row, exactly the value at row b
    of the whole map (rows above a are the zero padding): the cached sampler relies on this.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, include_centre_row: bool
    ) -> None:
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(
                f"vertical convolutions need an odd kernel size >= 3, got {kernel_size}"
            )
        rows = kernel_size // 2 + int(include_centre_row)
        super().__init__(in_channels, out_channels, (rows, kernel_size))
        self.include_centre_row = include_centre_row
        # left, right, top, bottom: a negative bottom pad drops the last row (row i unseen)
        self.pad = (
            kernel_size // 2,
            kernel_size // 2,
            kernel_size // 2,
            int(include_centre_row) - 1,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", include_centre_row={self.include_centre_row}"


class GatedBlock(nn.Module):
    """One Gated PixelCNN layer: ``(vertical, horizontal)`` -> ``(vertical, horizontal)``, each
    ``(B, channels, H, W)`` (``channels`` = 2h, as every course layer carries)."""

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
        self.vertical = VerticalConv2d(channels, 2 * channels, kernel_size, include_centre_row=True)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = MaskedConv2d(
            channels, 2 * channels, (1, kernel_size), "B", colour_groups, out_blocks=2
        )
        self.output = MaskedConv2d(channels, channels, 1, "B", colour_groups)
        # the biases of both stacks' gates: vertical's 2 * channels, then horizontal's
        self.condition_bias = condition_bias_conv(condition_channels, 4 * channels)

    def forward(
        self,
        stacks: tuple[torch.Tensor, torch.Tensor],
        image: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` is unused: every layer takes ``(features, image, condition)`` (``model.py``)."""
        v, h = stacks
        v_pre = self.vertical(v)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        if condition is not None:
            bias_v, bias_h = self.condition_bias(condition).chunk(2, dim=1)
            v_pre, h_pre = v_pre + bias_v, h_pre + bias_h
        out = self.output(gated(h_pre))
        return gated(v_pre), h + out if self.residual else out
