"""Sampling: cached equals naive, generators, temperature, image completion, clear errors."""

from __future__ import annotations

import pytest
import torch

from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import draw, sample


def _model(arch="row_lstm", channels=3, **kw):
    """A small seeded model; learned initial states (zero when built) get non-zero values."""
    torch.manual_seed(0)
    model = build_model(
        arch, channels, hidden=kw.pop("hidden", 8), layers=kw.pop("layers", 2), **kw
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("h0", "c0")):
                p.uniform_(-1, 1)
    return model


def _gen(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "channels,shape,kw",
    [
        (3, (3, 5, 7), {}),
        (1, (1, 6, 4), {}),
        (3, (3, 4, 4), {"skip": True}),
        (3, (3, 3, 5), {"kernel_size": 5}),
        (3, (3, 4, 5), {"learned_initial_state": True}),
        (1, (1, 5, 4), {"learned_initial_state": True, "skip": True}),
    ],
)
def test_cached_equals_naive(channels, shape, kw):
    model = _model(channels=channels, **kw)
    naive = sample(model, 3, shape, "naive", generator=_gen())
    cached = sample(model, 3, shape, "cached", generator=_gen())
    assert naive.shape == (3, *shape) and naive.dtype == torch.long
    assert torch.equal(naive, cached)
    assert naive.min() >= 0 and naive.max() <= 255
    assert len({tuple(img.flatten().tolist()) for img in naive}) == 3, (
        "images in a batch should differ"
    )


def test_same_generator_same_images_other_seed_other_images():
    model = _model(arch="pixelcnn")
    a = sample(model, 2, (3, 4, 5), generator=_gen(7))
    b = sample(model, 2, (3, 4, 5), generator=_gen(7))
    c = sample(model, 2, (3, 4, 5), generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_temperature_to_zero_is_argmax():
    model = _model().eval()
    greedy = torch.zeros(2, 3, 4, 4, dtype=torch.long)
    with torch.no_grad():
        for i in range(4):
            for j in range(4):
                for c in range(3):
                    greedy[:, c, i, j] = model(greedy)[:, :, c, i, j].argmax(dim=1)
    cold = sample(model, 2, (3, 4, 4), "cached", temperature=1e-6, generator=_gen())
    assert torch.equal(cold, greedy)


def test_draw_inverse_cdf_and_temperature():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25] + [1e-30] * 253]))
    u = torch.tensor([0.1, 0.6, 0.9])
    assert draw(logits.expand(3, -1), u).tolist() == [0, 1, 2]
    # a high temperature flattens: the uniform 0.6 then lands beyond value 1
    assert draw(logits.expand(3, -1), u, temperature=100.0)[2] > 2


@pytest.mark.parametrize("method", ["naive", "cached"])
def test_prefix_pixels_are_kept(method):
    model = _model()
    known = torch.randint(0, 256, (2, 3, 5, 5), generator=_gen(3))
    mask = torch.zeros(2, 3, 5, 5, dtype=torch.bool)
    mask[:, :, :2] = True  # the top two rows are known
    mask[1, 1, 3, 3] = True  # and one lone green value in image 1
    out = sample(model, 2, (3, 5, 5), method, generator=_gen(), prefix=(known, mask))
    assert torch.equal(out[mask], known[mask])
    other = sample(model, 2, (3, 5, 5), method, generator=_gen(), prefix=(known, mask))
    assert torch.equal(out, other)


def test_completion_cached_equals_naive():
    model = _model()
    known = torch.randint(0, 256, (1, 3, 5, 6), generator=_gen(3))
    mask = torch.zeros(1, 3, 5, 6, dtype=torch.bool)
    mask[:, :, :3] = True
    a = sample(model, 3, (3, 5, 6), "naive", generator=_gen(), prefix=(known, mask))
    b = sample(model, 3, (3, 5, 6), "cached", generator=_gen(), prefix=(known, mask))
    assert torch.equal(a, b)


def test_bad_arguments_give_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match="C = 3"):
        sample(model, 1, (1, 4, 4))
    for temperature in (0, 1e-320, float("inf"), float("nan")):  # nan probabilities, or noise
        with pytest.raises(ValueError, match="temperature must be a finite number from 1e-06"):
            sample(model, 1, (3, 4, 4), temperature=temperature)
    with pytest.raises(ValueError, match="method"):
        sample(model, 1, (3, 4, 4), method="fast")
    with pytest.raises(ValueError, match="prefix"):
        sample(model, 2, (3, 4, 4), prefix=(torch.zeros(3, 3, 4, 4), torch.ones(3, 3, 4, 4)))


@pytest.mark.parametrize(
    "channels,shape,skip,learned",
    [
        (3, (3, 5, 7), False, False),
        (1, (1, 6, 4), True, False),
        (3, (3, 4, 3), False, False),
        (3, (3, 4, 5), False, True),
        (1, (1, 5, 6), True, True),
    ],
)
def test_cached_equals_naive_diagonal_bilstm(channels, shape, skip, learned):
    model = _model(
        arch="diagonal_bilstm", channels=channels, skip=skip, learned_initial_state=learned
    )
    naive = sample(model, 3, shape, "naive", generator=_gen())
    cached = sample(model, 3, shape, "cached", generator=_gen())
    assert torch.equal(naive, cached)


@pytest.mark.parametrize(
    "channels,shape,kw",
    [
        (3, (3, 5, 7), {}),
        (1, (1, 6, 4), {}),
        (3, (3, 4, 5), {"skip": True}),
        (3, (3, 6, 6), {"kernel_size": 5, "layers": 3}),
        (1, (1, 5, 6), {"levels": 2, "skip": True}),
        (3, (3, 4, 4), {"levels": 4, "residual": False}),
    ],
)
def test_cached_equals_naive_pixelcnn(channels, shape, kw):
    model = _model(arch="pixelcnn", channels=channels, **kw)
    naive = sample(model, 3, shape, "naive", generator=_gen())
    cached = sample(model, 3, shape, "cached", generator=_gen())
    assert torch.equal(naive, cached)
    assert naive.max() < model.levels


def test_completion_cached_equals_naive_pixelcnn():
    model = _model(arch="pixelcnn")
    known = torch.randint(0, 256, (1, 3, 5, 6), generator=_gen(3))
    mask = torch.zeros(1, 3, 5, 6, dtype=torch.bool)
    mask[:, :, :2] = True
    mask[:, 0, 2, :3] = True  # part of a row, and only the red of it: the sampler fills the rest
    a = sample(model, 3, (3, 5, 6), "naive", generator=_gen(), prefix=(known, mask))
    b = sample(model, 3, (3, 5, 6), "cached", generator=_gen(), prefix=(known, mask))
    assert torch.equal(a, b) and torch.equal(a[:, mask[0]], known[:, mask[0]].expand(3, -1))


@pytest.mark.parametrize(
    "arch,learned",
    [
        ("row_lstm", False),
        ("row_lstm", True),
        ("diagonal_bilstm", False),
        ("diagonal_bilstm", True),
        ("pixelcnn", False),  # no recurrent state to learn
        ("gated_pixelcnn", False),
    ],
)
def test_cached_logits_match_the_full_forward(arch, learned):
    """Teacher forcing a real image through the cached stepper gives the model's own logits."""
    from pixelrnn_utils.sampling import CACHED

    options = {"learned_initial_state": True} if learned else {}
    model = _model(arch=arch, **options).eval()
    image = torch.randint(0, 256, (2, 3, 4, 5), generator=_gen(5))
    with torch.no_grad():
        full = model(image)
        x = torch.zeros_like(image)
        step = CACHED[arch](model, x)
        for i in range(4):
            for j in range(5):
                for c in range(3):
                    torch.testing.assert_close(
                        step(i, j, c, True), full[:, :, c, i, j], atol=1e-5, rtol=1e-5
                    )
                    x[:, c, i, j] = image[:, c, i, j]
                step.pixel_done(i, j)


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm", "pixelcnn", "gated_pixelcnn"])
def test_compare_samplers_draw_by_draw(arch):
    """The measure the GPU check reports: on a CPU the two samplers' probabilities agree to
    float rounding at every draw, and no draw differs (with a class too)."""
    from pixelrnn_utils.sampling import compare_samplers

    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=6, layers=2)
    report = compare_samplers(model, 2, (3, 4, 4), generator=torch.Generator().manual_seed(0))
    assert report["draws"] == 2 * 3 * 4 * 4
    assert report["draws_differ"] == 0 and report["max_prob_diff"] < 1e-6
    labelled = build_model(arch, 1, hidden=6, layers=1, levels=4, classes=3)
    report = compare_samplers(labelled, 2, (1, 3, 3), condition=torch.tensor([0, 2]))
    assert report["draws_differ"] == 0 and report["max_prob_diff"] < 1e-6
