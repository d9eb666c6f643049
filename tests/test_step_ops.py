"""A training step a GPU can run whole: one graph for torch.compile, no host syncs, few kernels.

Counted on the CPU with ``benchmarks/step_ops.py`` (which kernels an operation launches does not
depend on the device): every model's forward and loss trace as one Dynamo graph in float32 and
under bf16 autocast, and the compiled step (``aot_eager``, the CPU stand-in for inductor) gives
the eager loss and gradients; forward + loss + backward read no tensor value (a read is a host
sync on a GPU); and the two models the course trains longest stay under their kernel budgets.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pixelrnn_utils import train as train_module
from pixelrnn_utils.checkpoint import read_checkpoint
from pixelrnn_utils.settings import values_checked
from pixelrnn_utils.train import TrainingDiverged, train

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from step_ops import build, count_step, graph_breaks, step_inputs, step_loss  # noqa: E402

SMALL = {  # every kind of model the course builds, small
    "row_lstm": dict(arch="row_lstm", hidden=4, layers=1, channels=3, image_size=5),
    "diagonal_bilstm": dict(
        arch="diagonal_bilstm", hidden=4, layers=1, channels=3, image_size=5,
        learned_initial_state=True,
    ),
    "pixelcnn": dict(arch="pixelcnn", hidden=4, layers=1, channels=3, image_size=5),
    "gated_pixelcnn": dict(
        arch="gated_pixelcnn", hidden=4, layers=2, channels=3, image_size=5, classes=3
    ),
    "class-conditional": dict(
        arch="row_lstm", hidden=4, layers=1, channels=1, image_size=5, levels=4, classes=3
    ),
    "multi-scale": dict(
        arch="row_lstm", hidden=4, layers=1, channels=1, image_size=8, levels=2, multiscale=2
    ),
}  # fmt: skip
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def _model_and_batch(name: str):
    config = SMALL[name]
    model = build(**config)
    x, condition = step_inputs(model, 2, config["image_size"])
    return model, x, condition


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", SMALL)
def test_forward_and_loss_trace_as_one_graph(name, precision):
    model, x, condition = _model_and_batch(name)
    assert graph_breaks(model, x, condition, PRECISIONS[precision]) == []


@pytest.mark.parametrize("name", SMALL)
def test_compiled_loss_and_gradients_equal_eager(name):
    """The whole traced step, forward, loss and the hand-written backward, as eager computes it."""
    model, x, condition = _model_and_batch(name)
    results = []
    for step in (step_loss, torch.compile(step_loss, backend="aot_eager", fullgraph=True)):
        torch._dynamo.reset()
        model.zero_grad(set_to_none=True)
        with values_checked():
            loss = step(model, x, condition, None)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (eager, eager_grads), (compiled, compiled_grads) = results
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)
    assert eager_grads.keys() == compiled_grads.keys() and len(eager_grads) > 4
    for n in eager_grads:
        torch.testing.assert_close(compiled_grads[n], eager_grads[n], rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", SMALL)
def test_a_step_reads_no_tensor_value(name, precision):
    """No ``.item()``, ``int(t)`` or ``if t:`` in forward + loss + backward (each would make the
    CPU wait for the GPU); outside ``values_checked`` the models and the loss do check values."""
    model, x, condition = _model_and_batch(name)
    counter = count_step(model, x, condition, PRECISIONS[precision])
    assert counter.syncs == 0
    assert sum(counter.ops.values()) > 50  # the counter did see the step
    with pytest.raises(ValueError, match="levels"):
        step_loss(model, x + model.levels, condition, None)  # checked outside a training step


@pytest.mark.parametrize(
    "config, budget",
    [
        (dict(arch="row_lstm", hidden=64, layers=4, channels=3, image_size=32), 2500),
        (dict(arch="diagonal_bilstm", hidden=16, layers=7, channels=1, image_size=28, levels=2), 6000),
        (
            dict(
                arch="diagonal_bilstm", hidden=16, layers=7, channels=1, image_size=28, levels=2,
                skip=True, full_context=False,
            ),
            6000,
        ),
    ],
    ids=["seed Row LSTM", "MNIST Diagonal BiLSTM", "paper's MNIST Diagonal BiLSTM"],
)  # fmt: skip
def test_a_bf16_step_launches_at_most_its_kernel_budget(config, budget):
    """Batch 16, bf16: at most ``budget`` kernels (half what the per-row loops launched: 4,984
    and about 11,950), and the recurrences do run per row or per column (at least one
    product each)."""
    model = build(**config)
    x, condition = step_inputs(model, 16, config["image_size"])
    counter = count_step(model, x, condition, torch.bfloat16)
    steps = config["image_size"] if config["arch"] == "row_lstm" else 2 * config["image_size"] - 1
    products = counter.ops["mm"] + counter.ops["addmm"] + counter.ops["addmm_"]
    assert steps * config["layers"] < products
    assert sum(counter.ops.values()) <= budget


@pytest.mark.parametrize("save_every, steps_run", [(0, 5), (1e-9, 2)], ids=["no save", "saves"])
def test_a_diverged_loss_read_back_late_still_stops_the_run_and_saves_nothing(
    small_folder, tmp_path, monkeypatch, save_every, steps_run
):
    """On a GPU the losses are read back every few steps (here 4): the step that diverged is
    found among them and named, and a save that falls due reads them back first, so the run
    stops before it writes spoiled weights."""
    from conftest import tiny_run_config

    out = tmp_path / "run"
    monkeypatch.setattr(train_module, "loss_read_every", lambda device: 4)
    real_nll, calls = train_module.nll, []

    def nan_from_the_second_step(logits, x):
        calls.append(1)
        loss = real_nll(logits, x)
        return loss * float("nan") if len(calls) >= 2 else loss

    monkeypatch.setattr(train_module, "nll", nan_from_the_second_step)
    cfg = tiny_run_config(small_folder, out, epochs=1, batch_size=2, save_every=save_every)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1 after 2 images"):
        train(cfg)
    # read after the first step, then after four more; or at once when a save is due
    assert len(calls) == steps_run
    if save_every:  # the one save is of the last good step's weights
        assert read_checkpoint(out / "last.pt")["position"]["step"] == 1
    else:
        assert not (out / "last.pt").exists()
