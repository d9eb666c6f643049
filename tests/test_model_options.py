"""The options the paper's comparisons need: learned skip connections, no residual connections, the
Diagonal BiLSTM without the course's full-context addition, and learned initial recurrent states. Each is proved causal two
independent ways, keeps the R -> G -> B order, samples the same cached and naive, and is recorded
in checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from pixelrnn_utils.causality import dependency_map, missing_dependencies
from pixelrnn_utils.checkpoint import load_checkpoint, save_checkpoint
from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import sample

try:
    from perturb import earlier_than, perturbation_map, single_thread, with_leaky_relu
except ImportError:  # tests/ imported as a package
    from tests.perturb import earlier_than, perturbation_map, single_thread, with_leaky_relu

assert single_thread  # autouse fixture: one thread for the maps

VARIANTS = [
    ("pixelcnn", {"residual": False}),
    ("pixelcnn", {"skip": True}),
    ("row_lstm", {"residual": False}),
    ("row_lstm", {"residual": False, "skip": True}),
    ("diagonal_bilstm", {"residual": False, "skip": True}),
    ("diagonal_bilstm", {"full_context": False}),
    ("row_lstm", {"learned_initial_state": True}),
    ("diagonal_bilstm", {"learned_initial_state": True}),
    ("diagonal_bilstm", {"learned_initial_state": True, "full_context": False, "skip": True}),
]
IDS = [f"{arch}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for arch, kw in VARIANTS]


def _model(arch: str, channels: int = 3, **options):
    """A small seeded model; learned initial states (zero when built) get non-zero values."""
    torch.manual_seed(0)
    model = build_model(arch, channels, hidden=8, layers=2, **options)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("h0", "c0")):
                p.uniform_(-1, 1)
    return model


@pytest.mark.parametrize(("arch", "options"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("shape", [(3, 5, 6), (1, 5, 4)], ids=str)
def test_options_are_causal_two_independent_ways(arch, options, shape):
    model = with_leaky_relu(_model(arch, shape[0], **options))
    dep, pert = dependency_map(model, shape), perturbation_map(model, shape)
    allowed = earlier_than(*shape)
    assert (dep & ~allowed).nonzero().tolist() == []
    assert (pert & ~allowed).nonzero().tolist() == []
    assert torch.equal(dep, pert)
    C, H, W = shape
    expected = torch.ones(C, C, dtype=torch.bool).tril(-1)  # G sees R; B sees R, G
    assert all(torch.equal(dep[:, i, j, :, i, j], expected) for i in range(H) for j in range(W))
    assert dep[0, H - 1, W - 1, 0, H - 1, W - 2]  # and the pixel to the left is seen


@pytest.mark.parametrize("shape", [(3, 5, 9), (1, 6, 8)], ids=str)
def test_full_context_is_what_the_course_addition_buys(shape):
    full = dependency_map(with_leaky_relu(_model("diagonal_bilstm", shape[0])), shape)
    paper = dependency_map(
        with_leaky_relu(_model("diagonal_bilstm", shape[0], full_context=False)), shape
    )
    assert missing_dependencies(full) == []
    missing = missing_dependencies(paper)
    assert missing, "without the addition some earlier sub-pixel should be out of reach"
    C, _, W = shape
    # the last sub-pixel of the row above does not reach the start of the next row
    assert ((1, 0, 0), (0, W - 1, C - 1)) in missing
    assert not paper[0, 1, 0, C - 1, 0, W - 1] and full[0, 1, 0, C - 1, 0, W - 1]


@pytest.mark.parametrize(
    ("arch", "options"), [v for v in VARIANTS if v[0] != "pixelcnn"], ids=IDS[2:]
)
@pytest.mark.parametrize("channels", [3, 1])
def test_cached_sampling_equals_naive(arch, options, channels):
    model = _model(arch, channels, **options)
    shape = (channels, 4, 5)
    naive = sample(model, 2, shape, "naive", generator=torch.Generator().manual_seed(3))
    cached = sample(model, 2, shape, "cached", generator=torch.Generator().manual_seed(3))
    assert torch.equal(naive, cached)


@pytest.mark.parametrize(("arch", "options"), VARIANTS, ids=IDS)
def test_checkpoints_record_the_options(arch, options, tmp_path):
    model = _model(arch, **options)
    for key, value in options.items():
        assert model.config[key] == value
    path = save_checkpoint(tmp_path / "m.pt", model)
    loaded, info = load_checkpoint(path)
    assert loaded.config == model.config == info["config"]
    x = torch.randint(0, 256, (2, 3, 4, 5))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_residual_off_changes_the_function_not_the_parameters():
    on, off = _model("row_lstm"), _model("row_lstm", residual=False)
    assert [p.shape for p in on.parameters()] == [p.shape for p in off.parameters()]
    off.load_state_dict(on.state_dict())
    x = torch.randint(0, 256, (1, 3, 4, 4))
    with torch.no_grad():
        assert not torch.allclose(on(x), off(x))


def test_unknown_option_is_a_clear_error():
    with pytest.raises(ValueError, match="row_lstm does not take the option"):
        build_model("row_lstm", 3, hidden=8, layers=1, full_context=False)
    with pytest.raises(
        ValueError,
        match=r"pixelcnn does not take the option.*learned_initial_state \(row_lstm, diagonal_bilstm\)",
    ):
        build_model("pixelcnn", 3, hidden=8, layers=1, learned_initial_state=True)


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_learned_initial_state_is_trained_and_changes_the_logits(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=8, layers=2, learned_initial_state=True)
    states = {n: p for n, p in model.named_parameters() if n.endswith(("h0", "c0"))}
    per_layer = 2 if arch == "row_lstm" else 4  # diagonal: both directions
    assert len(states) == per_layer * 2 and all(p.shape == (8,) for p in states.values())
    x = torch.randint(0, 256, (2, 3, 4, 5))
    logits = model(x)
    torch.nn.functional.cross_entropy(logits, x).backward()
    for name, p in states.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    plain = _model(arch)  # the same weights, non-zero initial states
    torch.manual_seed(0)
    zero = build_model(arch, 3, hidden=8, layers=2)
    with torch.no_grad():
        # zero initial states = the default model (same seed: same other weights)
        assert torch.equal(logits, zero(x))
        with_states = _model(arch, learned_initial_state=True)
        assert not torch.allclose(with_states(x), plain(x))


def test_cli_options_reach_the_checkpoint(tiny_folder, tmp_path, capsys):
    from pixelrnn_utils.cli import main

    common = ["train", "--data", str(tiny_folder), "--hidden", "6", "--layers", "1"]
    common += ["--epochs", "1", "--limit", "8", "--val-limit", "4", "--image-size", "8"]
    out = tmp_path / "run"
    argv = [*common, "--arch", "diagonal_bilstm", "--no-residual", "--no-full-context", "--skip"]
    argv.append("--learned-initial-state")
    assert main([*argv, "--out", str(out)]) == 0
    json.loads(capsys.readouterr().out.splitlines()[-1])
    _, info = load_checkpoint(out / "last.pt")
    assert info["config"]["residual"] is False and info["config"]["full_context"] is False
    assert info["config"]["skip"] is True and info["config"]["learned_initial_state"] is True
    assert main([*common, "--no-full-context", "--out", str(tmp_path / "r2")]) == 2
    assert "diagonal_bilstm only" in capsys.readouterr().err
    argv = [*common, "--arch", "pixelcnn", "--learned-initial-state", "--out", str(tmp_path / "r3")]
    assert main(argv) == 2
    assert "recurrent layers only" in capsys.readouterr().err
