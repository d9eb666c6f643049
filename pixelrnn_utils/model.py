"""The full PixelRNN model and the one entry point that builds every architecture.

Every model has the same three parts (paper, Table 1):

1. **stem**: a 7x7 masked convolution, mask A, from the C image channels to 2h features;
2. **body**: ``layers`` residual layers, all 2h -> 2h: Row LSTM, Diagonal BiLSTM or PixelCNN block.
   Every layer is called as ``layer(features, image, condition)``; only the Diagonal BiLSTM uses
   the image. The Gated PixelCNN (:class:`GatedPixelCNN`) is the one whose layers carry two maps,
   a vertical stack beside the features (``gated_pixelcnn.py``);
3. **head**: ReLU -> masked 1x1 (2h -> 2h) -> ReLU -> masked 1x1 (2h -> L C), mask B.

``levels`` L is how many values a sub-pixel takes: 256 for 8-bit images (the default), 2 for
binarized MNIST. The image (long, 0..L-1) is scaled to [-1, 1] on the way in; the L C logits come
out as ``(B, L, C, H, W)`` so that ``F.cross_entropy(logits, x)`` is the per-sub-pixel NLL in
nats. At L = 2 the softmax over two logits ``(a, b)`` is the paper's sigmoid: p(1) =
sigmoid(b - a) (tests/test_model.py checks it).
With ``skip=True`` the head reads the paper's **skip connections** instead of the last layer's output:
every layer's output goes through its own masked 1x1 convolution (learned) into a sum. Layer
options: ``residual=False`` removes the layers' residual connections (the paper's Table 2 ablation),
``kernel_size`` (Row LSTM, PixelCNN), ``full_context=False`` (Diagonal BiLSTM without the course's
addition, see ``diagonal_bilstm.py``), ``learned_initial_state=True`` (Row LSTM, Diagonal BiLSTM:
the recurrent state starts from learned vectors instead of zero, paper §5.2).

**Conditioning** (see ``conditioning.py``): ``classes=K`` makes a class-conditional model,
``model(x, condition=labels)`` with labels ``(B,)``; ``upsample=f`` makes the conditional stage of
a Multi-Scale PixelRNN (paper §3.6), ``model(x, condition=small)`` with the small image
``subsample(x, f)``. Either is turned into a c x H x W map (c = ``hidden``) that every layer adds,
through its own 1x1 convolution, to its input-to-state map. ``multiscale=f`` builds the two-stage
model, :class:`MultiScalePixelRNN` (below; its likelihood and order are explained in
``multiscale.py``, its two-stage sampling is in ``sampling.py``). Without these options a model has
no conditioning parameters at all.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import ClassEmbedding, Upsampler, subsample, subsample_mask
from .diagonal_bilstm import DiagonalBiLSTM
from .gated_pixelcnn import GatedBlock, VerticalConv2d
from .masks import MaskedConv2d
from .pixelcnn import PixelCNNBlock
from .row_lstm import RowLSTM, state_dtype

__all__ = [
    "ARCHITECTURES",
    "GatedPixelCNN",
    "MultiScalePixelRNN",
    "PixelRNN",
    "build_model",
    "preprocess",
    "sequential_steps",
]

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "row_lstm": RowLSTM,
    "diagonal_bilstm": DiagonalBiLSTM,
    "pixelcnn": PixelCNNBlock,
    "gated_pixelcnn": GatedBlock,
}


def preprocess(x: torch.Tensor, dtype: torch.dtype, levels: int = 256) -> torch.Tensor:
    """Map images of values 0..levels-1 (long, or float for gradient probes) to [-1, 1] in ``dtype``."""
    return x.to(dtype) / ((levels - 1) / 2) - 1.0


class PixelRNN(nn.Module):
    """Stem (mask A) -> residual layers -> head; images ``(B, C, H, W)`` -> logits ``(B, L, C, H, W)``."""

    def __init__(
        self,
        arch: str,
        in_channels: int = 3,
        hidden: int = 64,
        layers: int = 4,
        skip: bool = False,
        levels: int = 256,
        classes: int | None = None,
        upsample: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}"
            )
        if arch == "gated_pixelcnn" and not isinstance(self, GatedPixelCNN):
            raise ValueError("build the Gated PixelCNN with build_model('gated_pixelcnn', ...)")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")
        if hidden < 3:
            raise ValueError(
                f"hidden must be at least 3 (one feature per colour group), got {hidden}"
            )
        if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 256:
            raise ValueError(f"levels must be an integer from 2 to 256, got {levels!r}")
        self.config: dict[str, Any] = dict(
            arch=arch, in_channels=in_channels, hidden=hidden, layers=layers, skip=skip, **options
        )
        if levels != 256:  # 8-bit models keep the config (and checkpoints) they always had
            self.config["levels"] = levels
        if classes is not None and upsample is not None:
            raise ValueError("a model is conditioned on a class or on a small image, not both")
        # like levels: only when set, so the configs of unconditioned models are unchanged
        if classes is not None:
            self.config["classes"] = classes
        if upsample is not None:
            self.config["upsample"] = upsample
        self.classes, self.upsample = classes, upsample
        condition_channels = hidden if classes is not None or upsample is not None else None
        self.in_channels = in_channels
        self.levels = levels
        groups = in_channels  # one colour group per image channel: R, G, B (or L)
        features = 2 * hidden
        self.stem = MaskedConv2d(in_channels, features, 7, "A", groups)
        layer = ARCHITECTURES[arch]
        conditioned = {} if condition_channels is None else {"condition_channels": hidden}
        try:
            self.layers = nn.ModuleList(
                layer(features, hidden, groups, **options, **conditioned) for _ in range(layers)
            )
        except TypeError as e:
            raise ValueError(
                f"{arch} does not take the option(s) {sorted(options)}: {e}. Options: "
                "skip (all), residual (all), kernel_size (row_lstm, pixelcnn, gated_pixelcnn), "
                "full_context (diagonal_bilstm), "
                "learned_initial_state (row_lstm, diagonal_bilstm)"
            ) from e
        self.head = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(features, features, 1, "B", groups),
            nn.ReLU(),
            MaskedConv2d(features, levels * in_channels, 1, "B", groups),
        )
        # built last, so that a model with and without them shares every other initial weight
        # skip connections (paper §3.3): each layer's output, through its own 1x1, to the head
        self.skips = (
            nn.ModuleList(MaskedConv2d(features, features, 1, "B", groups) for _ in range(layers))
            if skip
            else None
        )
        # the conditioning map (c = hidden features) from what the model is given; None: none
        self.conditioner: nn.Module | None = None
        if classes is not None:
            self.conditioner = ClassEmbedding(classes, hidden)
        elif upsample is not None:
            self.conditioner = Upsampler(in_channels, hidden, upsample, levels)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
                + (
                    "; this model is for grey images (channels=1)"
                    if self.in_channels == 1
                    else "; this model is for RGB images (channels=3)"
                )
            )

    def condition_map(
        self, condition: torch.Tensor | None, batch: int, size: tuple[int, int]
    ) -> torch.Tensor | None:
        """The c x H x W conditioning map ``(B, c, H, W)`` every layer reads, or None.

        Refuses a condition the model does not take, or a missing one, with a clear error.
        """
        if self.conditioner is None:
            if condition is not None:
                raise ValueError(
                    "this model is unconditioned: it takes no condition (build it with "
                    "classes=K for class labels, or upsample=f for a small image)"
                )
            return None
        if condition is None:
            what = (
                f"class labels (B,) in 0..{self.classes - 1}"
                if self.classes is not None
                else f"the small image subsample(x, {self.upsample})"
            )
            raise ValueError(f"this model is conditional: pass condition= {what}")
        if self.classes is not None:
            self.conditioner.check(condition, batch)
        else:
            self.conditioner.check(condition, batch, size)
        return self.conditioner(condition, size)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, L, C, H, W)`` of images ``x``; ``condition``: labels or the small image."""
        self.check_input(x)
        cond = self.condition_map(condition, x.shape[0], tuple(x.shape[2:]))
        image = preprocess(x, self.stem.weight.dtype, self.levels)
        # the stem in float32 even under autocast: in bfloat16 the image itself would be rounded
        # (8 significant bits round all but 2 of its 256 levels in [-1, 1]), and the gradients with it
        with torch.autocast(x.device.type, enabled=False):
            state = self.stems(image)
        total = 0
        for k, layer in enumerate(self.layers):
            state = layer(state, image, cond)
            if self.skips is not None:
                total = total + self.skips[k](self.layer_output(state))
        out = self.head[:-1](self.layer_output(state) if self.skips is None else total)
        # the logits in float32 even under autocast: the loss and bits/dim are computed from them
        return self.to_logits(out.to(state_dtype(out)))

    def stems(self, image: torch.Tensor) -> torch.Tensor:
        """What the first layer reads: the stem's ``(B, 2h, H, W)`` features of the scaled image."""
        return self.stem(image)

    @staticmethod
    def layer_output(state: torch.Tensor) -> torch.Tensor:
        """The features a layer passes on, as the skips and the head read them."""
        return state

    def to_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head's last masked 1x1 convolution: ``(B, 2h, H, W)`` -> logits ``(B, L, C, H, W)``.

        A 1x1 convolution is one matrix product over every pixel's channels. Computed that way in
        the ``(B, H, W, channels)`` layout it is about 1.6x faster on a CPU than ``conv2d``, and
        each sub-pixel's L logits end up side by side in memory, where the loss's log-softmax
        reads them. The logits returned are a ``(B, L, C, H, W)`` view of that layout: the same
        numbers as ``head[-1]`` applied as a convolution (tests/test_model.py checks it).
        """
        conv = self.head[-1]
        B, _, H, W = features.shape
        weight = conv.masked_weight().flatten(1)  # (L C, 2h); output block c is colour c
        pixels = features.permute(0, 2, 3, 1).contiguous()  # (B, H, W, 2h): one row per pixel
        out = logits_linear(pixels, weight, conv.bias)  # (B, H, W, L C)
        return out.view(B, H, W, self.in_channels, self.levels).permute(0, 4, 3, 1, 2)


class GatedPixelCNN(PixelRNN):
    """The Gated PixelCNN (``gated_pixelcnn.py``): PixelRNN's stem, head, skip connections and
    conditioning around :class:`~pixelrnn_utils.gated_pixelcnn.GatedBlock` layers, which carry a
    vertical stack beside the horizontal one. ``vertical_stem`` starts the vertical stack: the
    image's rows above each pixel, as wide as the stem (7 columns)."""

    def __init__(self, arch: str = "gated_pixelcnn", *args: Any, **options: Any) -> None:
        if arch != "gated_pixelcnn":
            raise ValueError(f"GatedPixelCNN builds arch 'gated_pixelcnn', not {arch!r}")
        super().__init__(arch, *args, **options)
        size = self.stem.kernel_size[1]
        self.vertical_stem = VerticalConv2d(
            self.in_channels, self.stem.out_channels, size, include_centre_row=False
        )

    def stems(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(vertical, horizontal)``: the rows above each pixel, and PixelRNN's mask-A stem."""
        return self.vertical_stem(image), self.stem(image)

    @staticmethod
    def layer_output(state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return state[1]  # the horizontal stack


def model_class(arch: str) -> type[PixelRNN]:
    """The single-stage model class that builds ``arch``."""
    return GatedPixelCNN if arch == "gated_pixelcnn" else PixelRNN


class _LogitsLinear(torch.autograd.Function):
    """``F.linear`` in float32 forward, in ``grad_dtype`` (bfloat16/float16) backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, grad_dtype):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x, weight)
        ctx.grad_dtype = grad_dtype
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight = (t.to(ctx.grad_dtype) for t in ctx.saved_tensors)
        grad16 = grad.to(ctx.grad_dtype)
        grad_x = grad16 @ weight  # (..., in)
        grad_w = (x.flatten(0, -2).T @ grad16.flatten(0, -2)).T  # (out, in)
        grad_b = grad.flatten(0, -2).sum(0) if ctx.needs_input_grad[2] else None
        return grad_x.to(grad.dtype), grad_w.to(grad.dtype), grad_b, None


def logits_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for the logits: exact forward, mixed-precision backward.

    Under autocast (on ``x``'s device) the forward still runs in float32, so the logits the loss
    and bits/dim come from are never rounded to 16 bits (see README, "Does bf16 cost accuracy?").
    Their gradients are computed the way autocast computes every other layer's, in the autocast
    dtype: the two backward products are the largest matrix products of a training step, and in
    bfloat16 they take less than half the time.
    Without autocast (float32 training) this is plain ``F.linear``.
    """
    device = x.device.type
    if not torch.is_autocast_enabled(device):
        return F.linear(x, weight, bias)
    with torch.autocast(device, enabled=False):
        return _LogitsLinear.apply(x, weight, bias, torch.get_autocast_dtype(device))


class MultiScalePixelRNN(nn.Module):
    """The Multi-Scale PixelRNN (paper §3.6): ``small`` (unconditional, s x s) + ``big``
    (conditioned on the small image, n x n), two PixelRNNs of the same architecture and size.

    ``multiscale`` is f = n / s (a power of 2: 2 for 28 -> 14, 4 for 28 -> 7). Images
    ``(B, C, n, n)`` -> logits ``(B, L, C, n, n)`` of the exact likelihood: the small stage's at
    the pixels of s = ``subsample(x, f)``, the big stage's elsewhere (``multiscale.py`` explains
    why, and the order this makes). ``small``, ``big`` and ``factor`` are all that
    ``sampling.sample_multiscale`` reads to draw an image stage by stage.
    """

    def __init__(
        self,
        arch: str,
        in_channels: int = 3,
        hidden: int = 64,
        layers: int = 4,
        multiscale: int = 2,
        levels: int = 256,
        **options: Any,
    ) -> None:
        super().__init__()
        for name in ("classes", "upsample"):
            if options.get(name) is not None:
                raise ValueError(f"multiscale builds its own conditioning; drop {name}=")
            options.pop(name, None)
        self.factor = multiscale
        stage = model_class(arch)
        self.small = stage(arch, in_channels, hidden, layers, levels=levels, **options)
        self.big = stage(
            arch, in_channels, hidden, layers, levels=levels, upsample=multiscale, **options
        )
        self.config: dict[str, Any] = {**self.small.config, "multiscale": multiscale}
        self.in_channels, self.levels, self.classes = in_channels, levels, None

    def check_input(self, x: torch.Tensor) -> None:
        self.big.check_input(x)
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise ValueError(
                f"images of {x.shape[2]} x {x.shape[3]} cannot be subsampled by {self.factor}"
            )

    def stage_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(small logits (B, L, C, s, s), big logits (B, L, C, n, n))`` of images ``x``."""
        self.check_input(x)
        small = subsample(x, self.factor)
        return self.small(small), self.big(x, condition=small)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, L, C, n, n)``: the small stage's at the pixels of s, the big one's elsewhere."""
        if condition is not None:
            raise ValueError("a Multi-Scale PixelRNN makes its own condition (the small image)")
        small_logits, logits = self.stage_logits(x)
        logits = logits.clone()
        logits[..., :: self.factor, :: self.factor] = small_logits
        return logits

    @torch.no_grad()
    def nll_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image NLL in nats ``(B,)`` of each part of the likelihood.

        ``small``: -log p_small(s); ``big``: the big stage on the n^2 - s^2 pixels it draws;
        ``total`` = small + big = -log p(x), exact; ``big_on_known``: what the big stage would
        spend predicting the s^2 pixels it is given (the paper's variant adds this: the NLL of
        the pair (s, x)).
        """
        small_logits, big_logits = self.stage_logits(x)
        small = subsample(x, self.factor)
        per_small = F.cross_entropy(small_logits, small, reduction="none").flatten(1).sum(1)
        per_big = F.cross_entropy(big_logits, x, reduction="none")  # (B, C, n, n)
        known = subsample_mask(per_big.shape, self.factor, x.device)
        big = per_big.masked_fill(known, 0).flatten(1).sum(1)
        on_known = per_big.masked_fill(~known, 0).flatten(1).sum(1)
        return {"small": per_small, "big": big, "total": per_small + big, "big_on_known": on_known}


def build_model(
    arch: str, in_channels: int = 3, hidden: int = 64, layers: int = 4, **options: Any
) -> PixelRNN:
    """Build any course model. ``build_model("row_lstm", 3, hidden=64, layers=4)`` is the seed.

    ``arch`` is ``"row_lstm"``, ``"diagonal_bilstm"``, ``"pixelcnn"`` or ``"gated_pixelcnn"``
    (a :class:`GatedPixelCNN`); ``options`` are
    ``levels`` (values per sub-pixel, 2..256, default 256), ``skip=True`` (learned skip
    connections to the head), the layer options ``residual``, ``kernel_size``,
    ``full_context`` and ``learned_initial_state``, and the conditioning: ``classes=K``,
    ``upsample=f`` (the conditional stage of a Multi-Scale PixelRNN) or ``multiscale=f`` (the
    whole two-stage model, a :class:`MultiScalePixelRNN`); see the module docstring.
    """
    if options.get("multiscale") is not None:
        return MultiScalePixelRNN(arch, in_channels, hidden, layers, **options)
    options.pop("multiscale", None)
    return model_class(arch)(arch, in_channels, hidden, layers, **options)


def sequential_steps(arch: str, height: int, width: int) -> int:
    """How many steps one layer of ``arch`` must take one after the other on an H x W map, in training.

    PixelCNN and the Gated PixelCNN: 1 (every position at once). Row LSTM: one step per row, H. Diagonal BiLSTM: one step
    per column of the skewed map, W + H - 1; its two directions are independent and this package
    runs them side by side, in the same steps (``diagonal_bilstm.diagonal_recurrence``).
    (Sampling is sequential for all three: C H W steps.)
    """
    steps = {
        "pixelcnn": 1,
        "gated_pixelcnn": 1,
        "row_lstm": height,
        "diagonal_bilstm": width + height - 1,
    }
    if arch not in steps:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(steps)}")
    return steps[arch]
