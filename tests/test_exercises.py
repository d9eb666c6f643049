"""The exercise checks: unanswered, wrong and right answers each get the verdict they deserve."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixelrnn_utils import exercises as ex
from pixelrnn_utils.data import requantize
from pixelrnn_utils.diagonal_bilstm import DiagonalBiLSTM, skew, unskew
from pixelrnn_utils.exercises import nb06_sampling, nb10_gated_pixelcnn
from pixelrnn_utils.gated_pixelcnn import gated
from pixelrnn_utils.masks import make_mask
from pixelrnn_utils.model import sequential_steps
from pixelrnn_utils.row_lstm import lstm_update
from pixelrnn_utils.sampling import draw


def _requantize_floor(images, levels):  # truncates q * 255 / (L - 1) instead of rounding it
    return (images.long() * levels // 256) * 255 // (levels - 1)


def _make_mask(in_channels, out_channels, k, mask_type):
    return make_mask(in_channels, out_channels, (k, k), mask_type)


def _row_step(is_row, h_prev, c_prev, weight, bias):
    return lstm_update(
        is_row + F.conv1d(h_prev, weight, bias, padding=weight.shape[2] // 2), c_prev
    )


def _row_step_k3(is_row, h_prev, c_prev, weight, bias):  # right for k = 3 only
    return lstm_update(is_row + F.conv1d(h_prev, weight, bias, padding=1), c_prev)


def _lstm_update_torch_order(gates, c_prev):
    i, f, g, o = gates.chunk(4, dim=1)
    return lstm_update(torch.cat([o, f, i, g], dim=1), c_prev)


def _stack_masks(k, vertical_rows=None, vertical_cols=None):
    """The two stacks' masks; with ``vertical_rows`` / ``vertical_cols`` a mistaken vertical mask."""
    c = k // 2
    vertical, horizontal = torch.zeros(k, k), torch.zeros(k, k)
    vertical[: c + 1 if vertical_rows is None else vertical_rows(c), :vertical_cols] = 1
    horizontal[c, : c + 1] = 1
    return vertical, horizontal


def _polyak(weights, decay):
    average = weights[0].clone()
    for w in weights[1:]:
        average = decay * average + (1 - decay) * w
    return average


def _train_step(model, optimizer, x):
    loss = F.cross_entropy(model(x), x)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


def _train_step_unclipped(model, optimizer, x):
    loss = F.cross_entropy(model(x), x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def _train_step_accumulating(model, optimizer, x):  # never zeroes the gradients
    loss = F.cross_entropy(model(x), x)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


@torch.no_grad()
def _naive_sample(model, n, shape, generator, temperature=1.0, sees_own_pixel=True):
    """The exercise's naive sampler; ``sees_own_pixel=False`` is the one-pass-per-pixel mistake."""
    C, H, W = shape
    x = torch.zeros(n, C, H, W, dtype=torch.long)
    for i in range(H):
        for j in range(W):
            finished = x.clone()  # pixel (i, j) not started
            for c in range(C):
                logits = model(x if sees_own_pixel else finished)[:, :, c, i, j]
                x[:, c, i, j] = draw(logits, torch.rand(n, generator=generator), temperature)
    return x


def _class_nats(model, x):
    """(N, 10): -log p(x | k) of every image under every class."""
    with torch.no_grad():
        return torch.stack(
            [
                F.cross_entropy(model(x, condition=torch.full((len(x),), k)), x, reduction="none")
                .flatten(1)
                .sum(1)
                for k in range(10)
            ],
            1,
        )


def _classify(model, x):
    return _class_nats(model, x).argmin(1)


IMAGES = torch.tensor([[[[0, 255, 255], [3, 255, 7]]]])

CASES = [
    (ex.check_bits_per_dim_from_nats, 6000 / (3072 * math.log(2)), 6000 / 3072),
    (ex.check_bits_per_dim_from_unit_scale, 3.20, -12.80),
    (ex.check_requantize, requantize, lambda images, levels: images),
    (ex.check_requantize, requantize, _requantize_floor),
    (lambda a: ex.check_most_common_value(a, IMAGES), 255, 0),
    (ex.check_mask_b, make_mask(1, 1, (3, 3), "B", 1)[0, 0], make_mask(1, 1, (3, 3), "A", 1)[0, 0]),
    (ex.check_mask_a_context, 37, 36),  # G does see R at its own pixel
    (ex.check_make_mask, _make_mask, lambda i, o, k, t: make_mask(i, o, (k, k), "B")),  # leaks
    (ex.check_make_mask, _make_mask, lambda i, o, k, t: make_mask(i, o, (k, k), "A")),  # hides
    (ex.check_lstm_update, lstm_update, lambda gates, c: (c, c)),
    (ex.check_row_step, _row_step, lambda r, h, c, w, b: lstm_update(r, c)),  # row above missing
    (ex.check_row_step, _row_step, _row_step_k3),  # the padding of a 3-wide kernel
    (ex.check_lstm_update_torch_order, _lstm_update_torch_order, lstm_update),  # o, f, i, g
    (ex.check_row_lstm_steps, 32, 48),
    (ex.check_triangle_width, 11, 9),  # 9: a symmetric triangle, forgetting the input's mask
    (ex.check_skew, lambda x: skew(x[None, None])[0, 0], lambda x: x),
    (ex.check_skewed_width, 55, 71),  # 71 = 2W - 1, for a square image only
    (ex.check_unskew, lambda y: unskew(y[None, None])[0, 0], lambda y: y[:, : y.shape[0]]),
    (ex.check_shift_down, ex.shift_down, lambda right: F.pad(right, (0, 0, 0, 1))[:, :, 1:]),
    (ex.check_bits_per_dim_to_loss_per_pixel, 3.00 * math.log(2) * 3, 3.00 * math.log(2)),
    (ex.check_steps_per_epoch, 2813, 2812),
    (ex.check_cosine_halfway, 5e-4, 1e-3),
    (ex.check_train_step, _train_step, _train_step_unclipped),
    (ex.check_draw, draw, lambda logits, u: logits.argmax(-1)),
    (ex.check_temperature_probability, 0.25 / 0.38, 0.5),
    (ex.check_completion_steps, 1536, 512),
    (  # right, and drawing G and B of a pixel without seeing its R (and G)
        ex.check_naive_sampler,
        _naive_sample,
        lambda m, n, s, g, t=1.0: _naive_sample(m, n, s, g, t, sees_own_pixel=False),
    ),
    (
        ex.check_sequential_steps,
        {
            arch: sequential_steps(arch, 64, 64)
            for arch in ("pixelcnn", "row_lstm", "diagonal_bilstm")
        },
        {"pixelcnn": 1, "row_lstm": 64, "diagonal_bilstm": 64},  # one step per column
    ),
    (ex.check_skip_parameters, 4 * (128 * 128 + 128), 4 * 128 * 128),  # biases forgotten
    (lambda a: ex.check_images_in_equal_time(a, 40.0, 20.0, 6000), 12000, 3000),
    (ex.check_nats_per_image, 0.14 * 784 * math.log(2), 0.14 * 784),  # ln 2 forgotten
    (ex.check_uniform_nats, 784 * math.log(4), 784 * math.log2(4)),  # bits, not nats
    (  # the right baseline, and one without smoothing (infinite on a pixel never seen on)
        ex.check_independent_pixels,
        ex.independent_pixels_nll,
        lambda train, test: float(
            -(
                test.flatten(1) * train.flatten(1).double().mean(0).log()
                + (1 - test.flatten(1)) * (1 - train.flatten(1).double().mean(0)).log()
            )
            .sum(1)
            .mean()
        ),
    ),
    (  # bits instead of nats
        ex.check_pixel_nll,
        ex.per_pixel_nll,
        lambda model, x: ex.per_pixel_nll(model, x) / math.log(2),
    ),
    (  # the NLL of ink at every pixel, whatever the pixel's value
        ex.check_pixel_nll,
        ex.per_pixel_nll,
        lambda model, x: -model(x[None]).log_softmax(1)[0, 1, 0].detach(),
    ),
    # notebook 09: the class with the largest NLL (a sign slip), and the right one
    (ex.check_classify, _classify, lambda model, x: _class_nats(model, x).argmax(1)),
    # notebook 10: a vertical mask that reaches below the centre row (a leak), one that stops
    # above it (rows just above never reached), one that leaves out the columns right of centre
    (ex.check_stack_masks, _stack_masks, lambda k: _stack_masks(k, lambda c: c + 2)),
    (ex.check_stack_masks, _stack_masks, lambda k: _stack_masks(k, lambda c: c)),
    (ex.check_stack_masks, _stack_masks, lambda k: _stack_masks(k, vertical_cols=k // 2 + 1)),
    (ex.check_gate, gated, lambda x: torch.tanh(x)),
    (ex.check_gate, gated, lambda x: torch.sigmoid(x[:, :3]) * torch.tanh(x[:, 3:])),  # swapped
    (ex.check_polyak, _polyak, lambda weights, decay: weights.mean(0)),
    (ex.check_polyak, _polyak, lambda w, d: _polyak(w, 1 - d)),  # the decay the wrong way round
    (  # the bins without their tails: the edge bins lose the mass beyond them
        ex.check_discretized_logistic,
        nb10_gated_pixelcnn.discretized_logistic,
        lambda m, s: (
            torch.sigmoid((torch.arange(256) + 0.5 - m) / s.exp())
            - torch.sigmoid((torch.arange(256) - 0.5 - m) / s.exp())
        ),
    ),
    (  # the log-scale used as the scale
        ex.check_discretized_logistic,
        nb10_gated_pixelcnn.discretized_logistic,
        lambda m, s: nb10_gated_pixelcnn.discretized_logistic(m, s.exp()),
    ),
]


@pytest.mark.parametrize(("check", "right", "wrong"), CASES)
def test_verdicts(check, right, wrong, capsys):
    asks_for_a_function = callable(right) and not isinstance(right, torch.Tensor)
    unanswered = (lambda *args: None) if asks_for_a_function else None  # the stub as given
    assert check(unanswered) is False
    assert "not attempted" in capsys.readouterr().out
    assert check(wrong) is False
    assert "not yet" in capsys.readouterr().out
    assert check(right) is True
    assert "correct" in capsys.readouterr().out


class _Given(nn.Module):
    """Stands in for the right-to-left LSTM: returns a given map (mirrored, as ``right_map`` expects)."""

    def __init__(self, right: torch.Tensor) -> None:
        super().__init__()
        self.right = right
        self.h0 = None

    def forward(self, x, extra=None):
        return self.right.flip(3)


def test_shift_down_is_the_packages_shift():
    """The exercise's reference shift is what ``DiagonalBiLSTM.right_map`` does to the right map."""
    right = torch.randn(2, 4, 5, 6)
    layer = DiagonalBiLSTM(8, 4, full_context=False)
    layer.right = _Given(right)
    x, image = torch.zeros(2, 8, 5, 6), torch.zeros(2, 3, 5, 6)
    assert torch.equal(layer.right_map(x, image), ex.shift_down(right))


@pytest.mark.parametrize(
    ("step", "hint"),
    [
        (_train_step_unclipped, "clip_grad_norm_"),
        (_train_step_accumulating, "zero the gradients"),
        (lambda m, o, x: F.cross_entropy(m(x), x), "optimizer.step()"),
        (lambda m, o, x: _train_step(m, o, x) / math.log(2), "in bits/dim"),
    ],
)
def test_train_step_names_the_mistake(step, hint, capsys):
    assert ex.check_train_step(step) is False
    assert hint in capsys.readouterr().out


@torch.no_grad()
def _colour_planes(model, n, shape, generator, temperature=1.0):
    """All the red values first, then green, then blue."""
    C, H, W = shape
    x = torch.zeros(n, C, H, W, dtype=torch.long)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                logits = model(x)[:, :, c, i, j]
                x[:, c, i, j] = draw(logits, torch.rand(n, generator=generator), temperature)
    return x


@pytest.mark.parametrize(
    ("mistake", "says"),
    [
        (lambda m, n, s, g, t=1.0: _naive_sample(m, n, s, g, t, sees_own_pixel=False), "own red"),
        (_colour_planes, "all the red values"),
        (lambda m, n, s, g, t=1.0: _naive_sample(m, n, s, g), "temperature is ignored"),
        (
            lambda m, n, s, g, t=1.0: _naive_sample(m, n, s, None, t),  # the global RNG
            "same generator seed gave different images",
        ),
        (lambda m, n, s, g, t=1.0: _naive_sample(m, n, s, g, t).float(), "integer values"),
        (lambda m, n, s, g, t=1.0: _naive_sample(m, n, s[:2] + (3,), g, t), "gave shape"),
    ],
)
def test_naive_sampler_names_the_mistake(mistake, says, capsys):
    """Common mistakes in the naive sampler get a hint that says what is wrong."""
    assert ex.check_naive_sampler(mistake) is False
    out = capsys.readouterr().out
    assert "not yet" in out and says in out, out


@pytest.mark.parametrize(("order", "sees_own_pixel"), list(nb06_sampling._SAMPLER_MISTAKES))
def test_every_sampler_mistake_changes_the_probe_images(order, sees_own_pixel):
    """On the check's tiny model, every mistake it names gives other images than the right
    sampler, at both temperatures it checks, so the check cannot pass a wrong loop."""
    from pixelrnn_utils.sampling import sample

    model = nb06_sampling._sampler_probe()
    for temperature in (1.0, 0.7):
        right = sample(
            model, 2, (3, 3, 4), temperature=temperature, generator=torch.Generator().manual_seed(1)
        )
        wrong = nb06_sampling._naive_variant(
            model,
            2,
            (3, 3, 4),
            torch.Generator().manual_seed(1),
            temperature,
            order,
            sees_own_pixel,
        )
        assert not torch.equal(right, wrong)
