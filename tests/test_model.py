"""build_model: shapes for every architecture, sane bits/dim at initialisation, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pixelrnn_utils.model import ARCHITECTURES, PixelRNN, build_model, sequential_steps

try:
    from perturb import single_thread
except ImportError:  # tests/ imported as a package
    from tests.perturb import single_thread

assert single_thread  # an autouse fixture: importing it applies it to this module

ARCHS = ("row_lstm", "diagonal_bilstm", "pixelcnn", "gated_pixelcnn")


def test_architectures_registered():
    assert set(ARCHITECTURES) == set(ARCHS)


SHAPES = [(2, 3, 5, 7), (1, 1, 7, 5), (3, 1, 4, 4), (2, 3, 1, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS)
def test_logits_shape(arch, shape):
    torch.manual_seed(0)
    B, C, H, W = shape
    model = build_model(arch, C, hidden=8, layers=2)
    assert isinstance(model, PixelRNN)
    x = torch.randint(0, 256, shape)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (B, 256, C, H, W)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # logits[:, :, c] are colour c's: the (B, 256*C, H, W) head output cut into blocks of 256
    with torch.no_grad():
        image = x.float() / 127.5 - 1
        h = model.stems(image)  # the Gated PixelCNN's: (vertical, horizontal)
        for layer in model.layers:
            h = layer(h, image)
        raw = model.head(model.layer_output(h))
    for c in range(C):
        torch.testing.assert_close(logits[:, :, c], raw[:, 256 * c : 256 * (c + 1)])
    # a view of one row of 256 logits per sub-pixel, which is what the loss reads (no copy)
    assert logits.permute(0, 3, 4, 2, 1).is_contiguous()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("arch", ARCHS)
def test_bits_per_dim_at_initialisation(arch, channels):
    torch.manual_seed(0)
    model = build_model(arch, channels, hidden=12, layers=2)
    x = torch.randint(0, 256, (4, channels, 6, 6))
    with torch.no_grad():
        nats = F.cross_entropy(model(x), x)
    bpd = nats.item() / math.log(2)
    assert math.isfinite(bpd)
    assert 7.5 < bpd < 8.5, bpd  # close to the uniform model's 8 bits


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError) as info:
        build_model("pixel_transformer", 3)
    message = str(info.value)
    assert "pixel_transformer" in message
    for arch in ARCHS:
        assert arch in message


@pytest.mark.parametrize("arch", ARCHS)
def test_wrong_channel_count_is_a_clear_error(arch):
    rgb = build_model(arch, 3, hidden=8, layers=1)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*\(2, 1, 4, 4\).*RGB"):
        rgb(torch.randint(0, 256, (2, 1, 4, 4)))
    grey = build_model(arch, 1, hidden=8, layers=1)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*grey"):
        grey(torch.randint(0, 256, (2, 3, 4, 4)))
    with pytest.raises(ValueError):
        rgb(torch.randint(0, 256, (3, 4, 4)))  # missing batch dimension


def test_invalid_options_rejected():
    with pytest.raises(ValueError, match="in_channels"):
        build_model("pixelcnn", 2)
    with pytest.raises(ValueError, match="hidden"):
        build_model("pixelcnn", 3, hidden=2)


@pytest.mark.parametrize("arch", ARCHS)
def test_float64(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=8, layers=1)
    x = torch.randint(0, 256, (2, 3, 4, 5))
    with torch.no_grad():
        single = model(x)
        double = model.double()(x)
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_config_rebuilds_the_same_model(arch):
    model = build_model(arch, 1, hidden=8, layers=2, skip=True)
    assert model.config == dict(arch=arch, in_channels=1, hidden=8, layers=2, skip=True)
    clone = build_model(**model.config)
    clone.load_state_dict(model.state_dict())
    x = torch.randint(0, 256, (1, 1, 4, 4))
    with torch.no_grad():
        torch.testing.assert_close(clone(x), model(x))


def test_kernel_size_option_reaches_the_layers():
    model = build_model("row_lstm", 3, hidden=8, layers=1, kernel_size=5)
    assert model.layers[0].state_to_state.kernel_size == (5,)
    assert model.layers[0].input_to_state.kernel_size == (1, 5)


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm", "pixelcnn"])
def test_all_parameters_get_gradients(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=8, layers=2)
    x = torch.randint(0, 256, (2, 3, 5, 6))
    F.cross_entropy(model(x), x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("shape", [(8, 8), (6, 10)])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_sequential_steps_counts_what_a_layer_runs(arch, shape, monkeypatch):
    """``sequential_steps`` equals the number of state-to-state products one layer computes one
    after the other (PixelCNN and the Gated PixelCNN: 1). The Row LSTM's fast path computes a
    row's gates in one ``torch.mm``, both convolutions at once (``torch.addmm`` with a
    conditioning; its readable path calls the state-to-state convolution once per row); the
    Diagonal BiLSTM's fast path starts both directions' gates of a column of the skewed map with
    one ``torch.addmm`` (the states above) and adds the states beside in place."""
    H, W = shape
    model = build_model(arch, 3, hidden=6, layers=1).eval()
    calls = []
    convolutional = arch in ("pixelcnn", "gated_pixelcnn")
    if not convolutional:
        for name in ("mm", "addmm"):
            product = getattr(torch, name)

            def counted(*args, product=product, **kwargs):
                calls.append(1)
                return product(*args, **kwargs)

            monkeypatch.setattr(torch, name, counted)
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 3, H, W)))
    assert (len(calls) if not convolutional else 1) == sequential_steps(arch, H, W)


def test_sequential_steps_rejects_unknown_architectures():
    with pytest.raises(ValueError, match="unknown architecture"):
        sequential_steps("transformer", 32, 32)
