"""Masked convolutions (paper §3.4, Figure 2).

A masked convolution is an ordinary convolution whose kernel is multiplied by a fixed 0/1 mask so
that the output at pixel (i, j) only sees pixels that come *before* (i, j) in raster order:

* every row above the centre row is visible;
* on the centre row, the pixels left of the centre are visible, the ones right of it are not;
* at the centre pixel itself the features are split into **colour groups** R, G, B. With
  **mask A** (first layer only) a group sees only strictly earlier groups (G sees R, B sees R and G,
  R sees nothing); with **mask B** (all later layers) a group also sees its own group.

Colour-group convention, used everywhere in this package: the ``n`` channels of a feature map are
cut into ``colour_groups`` contiguous blocks, channel ``k`` belonging to group ``k * groups // n``.
When ``n`` is not divisible by 3 the earlier groups get the extra channels (64 channels -> 22 R,
21 G, 21 B). For the image itself (3 channels) channel c is group c; for the logits (256 * C
channels) the first 256 are R, the next 256 G, the last 256 B. Grey images use one group.

``out_blocks`` handles layers whose output is several stacked maps (an LSTM's gates o, f, i, g):
the output channels are cut into ``out_blocks`` equal blocks and the colour grouping is applied
inside each block, so every gate has the same R/G/B layout as the hidden state it updates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["colour_group", "make_mask", "MaskedConv2d"]


def colour_group(channels: int, groups: int, blocks: int = 1) -> torch.Tensor:
    """Group index (0 = R, 1 = G, 2 = B) of each of ``channels`` feature maps.

    With ``blocks > 1`` the channels are ``blocks`` stacked maps of ``channels // blocks`` features
    and the grouping repeats inside each block.
    """
    if channels % blocks:
        raise ValueError(f"{channels} channels cannot be cut into {blocks} equal blocks")
    per_block = channels // blocks
    if per_block < groups:
        raise ValueError(
            f"{per_block} channels per block cannot hold {groups} colour groups; "
            f"use at least {groups} features"
        )
    return (torch.arange(per_block) * groups // per_block).repeat(blocks)


def make_mask(
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    mask_type: str,
    colour_groups: int = 3,
    out_blocks: int = 1,
) -> torch.Tensor:
    """The 0/1 mask ``(out_channels, in_channels, kh, kw)`` of a masked convolution.

    The centre of the kernel is ``(kh // 2, kw // 2)``: rows above it and columns left of it on
    the centre row are visible; the centre obeys the colour-group rule of ``mask_type`` ("A" or
    "B"); everything right of or below the centre is hidden.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = kernel_size
    ch, cw = kh // 2, kw // 2
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    mask[:, :, :ch, :] = 1  # rows above the centre
    mask[:, :, ch, :cw] = 1  # left part of the centre row
    g_out = colour_group(out_channels, colour_groups, out_blocks)[:, None]
    g_in = colour_group(in_channels, colour_groups)[None, :]
    centre = g_in < g_out if mask_type == "A" else g_in <= g_out
    mask[:, :, ch, cw] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A ``Conv2d`` whose kernel is masked so that no output sees itself or the future.

    ``kernel_size`` may be rectangular (``(1, 3)`` is the Row LSTM's input-to-state convolution);
    padding keeps the spatial size (``kh // 2``, ``kw // 2``; use odd kernels). The mask is a
    buffer built once and applied on every forward, so optimiser updates cannot break it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str,
        colour_groups: int = 3,
        out_blocks: int = 1,
        bias: bool = True,
    ) -> None:
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if ks[0] % 2 == 0 or ks[1] % 2 == 0:
            raise ValueError(f"masked convolutions need odd kernel sizes, got {ks}")
        super().__init__(in_channels, out_channels, ks, padding=(ks[0] // 2, ks[1] // 2), bias=bias)
        self.mask_type = mask_type
        self.colour_groups = colour_groups
        mask = make_mask(in_channels, out_channels, ks, mask_type, colour_groups, out_blocks)
        self.register_buffer("mask", mask)
        # The rows below the centre are always masked out (and, for a 1 x k kernel, the columns
        # right of it): forward() skips them, which saves a third of a 1 x 3 convolution's work.
        live = mask.sum(dim=(0, 1)).nonzero()
        if len(live):
            (top, left), (bottom, right) = live.min(0).values.tolist(), live.max(0).values.tolist()
        else:  # nothing visible at all (mask A, one colour group, 1 x 1): keep the full kernel
            top, left, bottom, right = 0, 0, ks[0] - 1, ks[1] - 1
        # None: every tap is live (a 1 x 1 kernel); indexing it anyway would cost a backward
        # op of its own in PyTorch 2.8
        trimmed = (top, left, bottom, right) != (0, 0, ks[0] - 1, ks[1] - 1)
        self.live = (slice(top, bottom + 1), slice(left, right + 1)) if trimmed else None
        ph, pw = self.padding
        self.live_padding = (pw - left, right - pw, ph - top, bottom - ph)

    def masked_weight(self) -> torch.Tensor:
        """The kernel actually used: weight times mask."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as ``conv2d(x, masked_weight(), padding=padding)``, computing only the live taps."""
        weight = self.masked_weight()
        if self.live is not None:
            weight = weight[..., self.live[0], self.live[1]]
        if any(self.live_padding):
            x = F.pad(x, self.live_padding)
        return F.conv2d(x, weight, self.bias)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", mask_type={self.mask_type}, colour_groups={self.colour_groups}"
        )
