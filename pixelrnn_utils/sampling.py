"""Sampling images from an autoregressive model, one sub-pixel at a time.

An image of C x H x W sub-pixels takes C * H * W sequential steps: sub-pixel (i, j, c) is drawn
from the model's distribution given everything drawn before it (raster order, R -> G -> B).

* ``method="naive"`` runs a full forward pass of the whole image for every step: simple, works for
  every architecture, and does H * W * C times the work of one forward pass.
* ``method="cached"`` (Row LSTM) keeps what earlier steps already computed. When pixel (i, j) is
  drawn, the Row LSTM states of row i - 1 are final, and the layer inputs at (i, j - 1) and before
  are final. So each step recomputes only one column: the 7x7 stem at (i, j), then per layer the
  input-to-state at (i, j), one LSTM update and the residual, then the head for colour c.
  State-to-state is computed once per row. That is O(layers) small matrix products per step
  instead of a whole forward pass.

Both methods draw one uniform number per image per step from ``generator`` and turn it into a
value by inverse-CDF sampling, so with the same generator they return the same images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .model import PixelRNN, preprocess
from .row_lstm import RowLSTM, lstm_update

__all__ = ["sample", "draw"]


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Inverse-CDF sample from ``(n, 256)`` logits with uniforms ``u`` ``(n,)`` in [0, 1).

    Temperature divides the logits: below 1 sharpens, above 1 flattens, -> 0 gives the argmax.
    Computed in float64 so that tiny float differences between methods almost never matter.
    """
    probs = F.softmax(logits.double() / temperature, dim=-1)
    cdf = probs.cumsum(-1)
    value = torch.searchsorted(cdf, (u.double() * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    return value.clamp_(max=255)


def _check(
    model: PixelRNN, n: int, shape: tuple[int, int, int], method: str, temperature: float
) -> None:
    if method not in ("naive", "cached"):
        raise ValueError(f"method must be 'naive' or 'cached', got {method!r}")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (use a small value such as 0.01 for near-argmax), got {temperature}"
        )
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(shape) != 3 or shape[0] != model.in_channels or min(shape) < 1:
        raise ValueError(
            f"shape must be (C, H, W) with C = {model.in_channels} for this model, got {tuple(shape)}"
        )
    if method == "cached" and model.config["arch"] != "row_lstm":
        raise ValueError(
            f"cached sampling is implemented for the Row LSTM; use method='naive' for {model.config['arch']!r}"
        )


def _prefix(
    prefix, n: int, shape: tuple[int, int, int], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Known values and mask, both ``(n, C, H, W)``."""
    if prefix is None:
        return torch.zeros(n, *shape, dtype=torch.long, device=device), torch.zeros(
            n, *shape, dtype=torch.bool, device=device
        )
    images, mask = prefix
    images = torch.as_tensor(images).to(device=device, dtype=torch.long)
    mask = torch.as_tensor(mask).to(device=device, dtype=torch.bool)
    try:
        return images.expand(n, *shape).clone(), mask.expand(n, *shape).clone()
    except RuntimeError as e:
        raise ValueError(
            f"prefix must be (images, mask), each broadcastable to (n, C, H, W) = ({n}, {shape[0]}, "
            f"{shape[1]}, {shape[2]}); got {tuple(images.shape)} and {tuple(mask.shape)}"
        ) from e


@torch.no_grad()
def sample(
    model: PixelRNN,
    n: int,
    shape: tuple[int, int, int],
    method: str = "naive",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Draw ``n`` images of ``shape = (C, H, W)``; returns long ``(n, C, H, W)`` in 0..255.

    ``prefix = (images, mask)`` gives image completion: where ``mask`` is True the value from
    ``images`` is kept exactly and the model fills in the rest. ``generator`` is a CPU
    ``torch.Generator``; the same generator state gives the same images with either method.
    """
    _check(model, n, shape, method, temperature)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    known, mask = _prefix(prefix, n, shape, device)
    x = torch.where(mask, known, torch.zeros_like(known))
    step = _NaiveStepper(model, x) if method == "naive" else _CachedRowLSTM(model, x)
    C, H, W = shape
    bar = tqdm(total=C * H * W, desc=f"sampling ({method})", disable=not progress, leave=False)
    for i in range(H):
        for j in range(W):
            for c in range(C):
                u = torch.rand(n, generator=generator).to(device)
                if mask[:, c, i, j].all():
                    value = known[:, c, i, j]
                    step(i, j, c, None)  # caches still see the pixel
                else:
                    value = draw(step(i, j, c, True), u, temperature)
                    value = torch.where(mask[:, c, i, j], known[:, c, i, j], value)
                x[:, c, i, j] = value
                bar.update(1)
            step.pixel_done(i, j)
    bar.close()
    model.train(was_training)
    return x


class _NaiveStepper:
    """One full forward pass of the partly drawn image ``x`` per step."""

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        self.model, self.x = model, x

    def __call__(self, i: int, j: int, c: int, want_logits) -> torch.Tensor | None:
        return None if want_logits is None else self.model(self.x)[:, :, c, i, j].float()

    def pixel_done(self, i: int, j: int) -> None:
        """Nothing is cached."""


class _CachedRowLSTM:
    """Incremental Row LSTM forward pass: one column of work per sub-pixel.

    Holds, per layer, the current row's layer inputs (for input-to-state), the previous row's
    hidden and cell states and their state-to-state contribution, and the current row's states.
    ``x`` is the image being drawn (shared with :func:`sample`, which writes into it).
    """

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        self.model, self.x = model, x
        n, C, H, W = x.shape
        self.layers: list[RowLSTM] = list(model.layers)
        stem = model.stem
        self.r = stem.kernel_size[0] // 2  # stem radius (3 for 7x7)
        r = self.r
        # mask A hides the rows below the centre: keep rows 0..r of the kernel only
        self.stem_w = stem.masked_weight()[:, :, : r + 1].reshape(stem.out_channels, -1)
        self.stem_b = stem.bias
        self.head_w1 = model.head[1].masked_weight()[:, :, 0, 0]
        self.head_b1 = model.head[1].bias
        self.head_w2 = model.head[3].masked_weight()[:, :, 0, 0].view(C, 256, -1)
        self.head_b2 = model.head[3].bias.view(C, 256)
        dtype = self.stem_w.dtype
        self.image = torch.zeros(
            n, C, H + 2 * r, W + 2 * r, dtype=dtype, device=x.device
        )  # zero padding
        self.k = [
            layer.input_to_state.kernel_size[1] // 2 for layer in self.layers
        ]  # taps left of centre
        self.is_w = [
            layer.input_to_state.masked_weight()[:, :, 0, : k + 1]
            for layer, k in zip(self.layers, self.k, strict=True)
        ]
        self.out_w = [layer.output.masked_weight()[:, :, 0, 0] for layer in self.layers]
        feats = model.stem.out_channels
        self.inputs = [torch.zeros(n, feats, W + k, dtype=dtype, device=x.device) for k in self.k]
        hid = [layer.hidden for layer in self.layers]
        self.h_prev = [torch.zeros(n, h, W, dtype=dtype, device=x.device) for h in hid]
        self.c_prev = [torch.zeros_like(h) for h in self.h_prev]
        self.h_cur = [torch.zeros_like(h) for h in self.h_prev]
        self.c_cur = [torch.zeros_like(h) for h in self.h_prev]
        self.s2s = [
            layer.state_to_state(h) for layer, h in zip(self.layers, self.h_prev, strict=True)
        ]
        self.row = 0

    def _new_row(self, i: int) -> None:
        self.h_prev, self.c_prev = self.h_cur, self.c_cur
        self.h_cur = [torch.zeros_like(h) for h in self.h_prev]
        self.c_cur = [torch.zeros_like(h) for h in self.h_prev]
        self.s2s = [
            layer.state_to_state(h) for layer, h in zip(self.layers, self.h_prev, strict=True)
        ]
        for buf in self.inputs:
            buf.zero_()
        self.row = i

    def pixel_done(self, i: int, j: int) -> None:
        """All colours of (i, j) are drawn: store the complete pixel for the next stems."""
        self.image[:, :, i + self.r, j + self.r] = preprocess(self.x[:, :, i, j], self.image.dtype)

    def __call__(self, i: int, j: int, c: int, want_logits) -> torch.Tensor | None:
        if i != self.row:
            self._new_row(i)
        r = self.r
        # the sub-pixels drawn so far, scaled like the model's input
        self.image[:, :, i + r, j + r] = preprocess(self.x[:, :, i, j], self.image.dtype)
        patch = self.image[:, :, i : i + r + 1, j : j + 2 * r + 1].reshape(self.x.shape[0], -1)
        a = patch @ self.stem_w.T + self.stem_b  # stem output at (i, j): (n, 2h)
        total = a
        for layer_idx, layer in enumerate(self.layers):
            k = self.k[layer_idx]
            buf = self.inputs[layer_idx]
            buf[:, :, j + k] = a
            window = buf[:, :, j : j + k + 1]  # layer inputs at (i, j - k) .. (i, j)
            gates = torch.einsum("nft,gft->ng", window, self.is_w[layer_idx])
            gates = gates + layer.input_to_state.bias + self.s2s[layer_idx][:, :, j]
            h, cell = lstm_update(gates, self.c_prev[layer_idx][:, :, j])
            self.h_cur[layer_idx][:, :, j] = h
            self.c_cur[layer_idx][:, :, j] = cell
            a = a + h @ self.out_w[layer_idx].T + layer.output.bias
            total = total + a if self.model.skip else a
        if want_logits is None:
            return None
        hidden = F.relu(F.relu(total) @ self.head_w1.T + self.head_b1)
        return (hidden @ self.head_w2[c].T + self.head_b2[c]).float()
