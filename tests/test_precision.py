"""Mixed precision done right: the choice, float32 LSTM state, exact evaluation, GradScaler state,
mid-epoch checkpoints and the learning-rate schedule."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from conftest import tiny_run_config
from pixelrnn_utils import train as train_module
from pixelrnn_utils.checkpoint import load_checkpoint, read_checkpoint
from pixelrnn_utils.metrics import bits_per_dim
from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import CACHED
from pixelrnn_utils.train import (
    TrainConfig,
    evaluate,
    learning_rate,
    resolve_precision,
    train,
)


def _cfg(folder: Path, out: Path, **kw) -> TrainConfig:
    return tiny_run_config(folder, out, **{"precision": "fp32", **kw})


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- the choice ----------------------------------------------------------------------------------


def test_auto_on_cpu_follows_native_bf16(monkeypatch):
    from pixelrnn_utils import precision

    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", "cpu")[0] == "bf16"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    precision, why = resolve_precision("auto", "cpu")
    assert precision == "fp32" and "float32" in why
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, "cpu")[0] == explicit
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", "cpu")


def test_auto_is_float32_when_kernels_are_held_to_avx2():
    """``ATEN_CPU_CAPABILITY=avx2`` (an older CPU emulated on a newer one) emulates bf16 in
    software, so ``auto`` must not pick it, whatever the CPU's flags say."""
    code = "from pixelrnn_utils.train import *; print(cpu_has_fast_bf16(), resolve_precision('auto', 'cpu')[0])"
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "fp32"]


@pytest.mark.parametrize(
    ("capability", "expected"), [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")]
)
def test_auto_on_gpus(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", "cuda")[0] == expected
    if expected == "fp16":  # a T4 cannot be asked for bf16
        with pytest.raises(ValueError, match="use --precision fp16"):
            resolve_precision("bf16", "cuda")


# --- float32 state under autocast ---------------------------------------------------------------


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_lstm_state_stays_float32_under_autocast(arch, monkeypatch):
    from pixelrnn_utils import diagonal_bilstm, row_lstm

    seen: list[tuple[torch.dtype, torch.dtype]] = []
    real = row_lstm.lstm_update

    def spy(gates, c_prev):
        h, c = real(gates, c_prev)
        seen.append((c_prev.dtype, c.dtype))
        return h, c

    monkeypatch.setattr(row_lstm, "lstm_update", spy)
    monkeypatch.setattr(diagonal_bilstm, "lstm_update", spy)  # the readable path
    real_recurrence = diagonal_bilstm.diagonal_recurrence

    def spy_recurrence(gates, *args):  # the Diagonal BiLSTM's fast path
        states = real_recurrence(gates, *args)
        seen.append((gates.dtype, states.dtype))
        return states

    monkeypatch.setattr(diagonal_bilstm, "diagonal_recurrence", spy_recurrence)
    real_rows, products = row_lstm.row_recurrence, []

    def spy_rows(features, *args, **kwargs):  # the Row LSTM's fast path: bf16 products only
        states = real_rows(features, *args, **kwargs)
        products.append(kwargs["product_dtype"])
        seen.append((states.dtype, states.dtype))
        return states

    monkeypatch.setattr(row_lstm, "row_recurrence", spy_rows)
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=6, layers=2)
    x = torch.randint(0, 256, (2, 3, 5, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.stem(x.float())
        logits = model(x)
    assert features.dtype == torch.bfloat16  # the convolutions do run in bf16
    assert logits.dtype == torch.float32  # the logits, which the loss reads, do not
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)
    assert len(seen) == 2  # one recurrence per layer
    assert products == ([torch.bfloat16] * 2 if arch == "row_lstm" else [])
    for layer in model.layers:  # the readable loops too: a call of lstm_update per row / column
        layer.fast = False
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    assert seen and all(d == (torch.float32, torch.float32) for d in seen)
    assert len(seen) == 2 * (5 if arch == "row_lstm" else 2 * (5 + 5 - 1))


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm", "pixelcnn", "gated_pixelcnn"])
def test_image_is_read_in_float32_under_autocast(arch, monkeypatch):
    """The layers that read the image (the stem; the Diagonal BiLSTM's full-context 1x1) run in
    float32: in bf16 the image would be rounded, and the gradients with it. The Diagonal
    BiLSTM's fast path takes its full-context term into the recurrence's matrix product: the
    image must reach ``diagonal_recurrence`` in float32, unrounded, in both directions."""
    from pixelrnn_utils import diagonal_bilstm

    torch.manual_seed(0)
    fast_model = build_model(arch, 3, hidden=6, layers=2)
    readable_model = copy.deepcopy(fast_model)
    for layer in readable_model.layers:  # the Diagonal BiLSTM's per-direction path
        layer.fast = False
    x = torch.arange(256).view(1, 1, 16, 16).expand(1, 3, 16, 16)  # every level 0..255
    image = x.float() / 127.5 - 1
    assert (image.bfloat16().float() != image).any()  # why it matters
    recurrence_inputs: list = []
    real_recurrence = diagonal_bilstm.diagonal_recurrence

    def spy_recurrence(inputs, *args):
        recurrence_inputs.append(inputs)
        return real_recurrence(inputs, *args)

    monkeypatch.setattr(diagonal_bilstm, "diagonal_recurrence", spy_recurrence)
    for model in (fast_model, readable_model):
        readers = [model.stem]
        if model is readable_model:
            readers += [
                layer.right_image for layer in model.layers if getattr(layer, "right_image", None)
            ]
        assert len(readers) == (3 if arch == "diagonal_bilstm" and model is readable_model else 1)
        seen: list = []
        hooks = [
            m.register_forward_hook(lambda m, args, out, seen=seen: seen.append((m, args[0], out)))
            for m in readers
        ]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)
        for hook in hooks:
            hook.remove()
        assert [m for m, _, _ in seen] == readers
        for module, read, out in seen:
            assert read.dtype == out.dtype == torch.float32
            assert torch.equal(read, image)
            torch.testing.assert_close(out, module(image))
    # the fast path, once per layer: inputs (D, K, H, W, B), [features; image], left then
    # mirrored right
    assert len(recurrence_inputs) == (2 if arch == "diagonal_bilstm" else 0)
    for inputs in recurrence_inputs:
        assert inputs.dtype == torch.float32
        assert torch.equal(inputs[0, -3:], image.permute(1, 2, 3, 0))
        assert torch.equal(inputs[1, -3:], image.flip(3).permute(1, 2, 3, 0))


def test_logits_are_float32_products_under_autocast():
    """Inside autocast the head's last product still runs in float32: the logits are not rounded."""
    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=8, layers=1)
    x = torch.randint(0, 256, (2, 3, 5, 6))
    seen = {}
    hook = model.head[2].register_forward_hook(lambda module, args, out: seen.update(out=out))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    hook.remove()
    features = seen["out"]  # what the last 1x1 convolution reads, computed in bf16
    assert features.dtype == torch.bfloat16
    with torch.no_grad():
        expected = model.head[3](features.float()).view(2, 3, 256, 5, 6).transpose(1, 2)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    rounded = expected.bfloat16().float()  # what a bf16 product would have given
    assert (rounded - expected).abs().max() > 100 * (logits - expected).abs().max()


def test_logits_linear_backward_runs_in_the_autocast_dtype():
    from pixelrnn_utils.model import logits_linear

    torch.manual_seed(0)
    x = torch.randn(3, 4, 24, requires_grad=True)
    w = torch.randn(10, 24, requires_grad=True)
    b = torch.randn(10, requires_grad=True)
    g = torch.randn(3, 4, 10)
    exact = torch.autograd.grad(F.linear(x, w, b), (x, w, b), g)
    # without autocast: plain F.linear, forward and backward
    plain = torch.autograd.grad(logits_linear(x, w, b), (x, w, b), g)
    for p, e in zip(plain, exact, strict=True):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logits_linear(x, w, b)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.linear(x, w, b), rtol=1e-6, atol=1e-6)  # exact forward
    grad_x, grad_w, grad_b = torch.autograd.grad(out, (x, w, b), g)
    assert grad_x.dtype == grad_w.dtype == grad_b.dtype == torch.float32
    # the gradients are bf16 products (exactly those), close to the float32 ones
    torch.testing.assert_close(grad_x, (g.bfloat16() @ w.bfloat16()).float())
    bf16_w = (g.bfloat16().flatten(0, 1).T @ x.bfloat16().flatten(0, 1)).float()
    torch.testing.assert_close(grad_w, bf16_w, rtol=1e-2, atol=1e-2)
    assert not torch.allclose(grad_x, exact[0], rtol=1e-5, atol=1e-5)
    for m, e in zip((grad_x, grad_w, grad_b), exact, strict=True):
        torch.testing.assert_close(m, e, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("arch", sorted(CACHED))
def test_cached_sampler_state_stays_float32_under_autocast(arch):
    from pixelrnn_utils.sampling import sample

    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=6, layers=1)
    generator = torch.Generator().manual_seed(0)
    plain = sample(model, 2, (3, 4, 4), method="cached", generator=generator)
    generator = torch.Generator().manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = sample(model, 2, (3, 4, 4), method="cached", generator=generator)
    assert torch.equal(plain, inside)


def test_bf16_forward_is_close_to_float32():
    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=16, layers=2)
    x = torch.randint(0, 256, (2, 3, 8, 8))
    exact = bits_per_dim(model(x), x).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = bits_per_dim(model(x), x).item()
    assert mixed != exact and abs(mixed - exact) < 0.01


def test_evaluate_is_float32_even_inside_autocast():
    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=8, layers=1)
    x = torch.randint(0, 256, (6, 3, 6, 6))
    loader = DataLoader(TensorDataset(x, torch.zeros(6)), batch_size=4)
    exact = evaluate(model, loader)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = evaluate(model, loader)
    assert inside == exact
    with torch.no_grad():
        assert exact["bits_per_dim"] == pytest.approx(bits_per_dim(model(x), x).item(), abs=1e-6)


# --- end to end ------------------------------------------------------------------------------------


def test_bf16_train_resume_evaluate(small_folder, tmp_path, capsys):
    from pixelrnn_utils.cli import main

    full = tmp_path / "full"
    train(_cfg(small_folder, full, epochs=2, precision="bf16"))
    parts = tmp_path / "parts"
    train(_cfg(small_folder, parts, epochs=1, precision="bf16"))
    train(_cfg(small_folder, parts, epochs=2, precision="bf16", resume=True))
    assert _same_weights(full / "last.pt", parts / "last.pt")
    rows = [json.loads(r) for r in (parts / "metrics.jsonl").read_text().splitlines()]
    assert [r["precision"] for r in rows] == ["bf16", "bf16"]
    assert read_checkpoint(parts / "last.pt")["train"]["precision"] == "bf16"
    last = str(parts / "last.pt")
    assert main(["evaluate", "--checkpoint", last, "--data", str(small_folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bits_per_dim"] == pytest.approx(rows[-1]["val_bits_per_dim"], abs=1e-9)


def test_grad_scaler_state_round_trip(small_folder, tmp_path):
    out = tmp_path / "run"
    train(_cfg(small_folder, out, epochs=1, precision="fp16"))
    state = read_checkpoint(out / "last.pt")
    assert state["scaler"]["scale"] > 1  # a live float16 loss scale was saved
    state["scaler"]["scale"] = 8.0  # as if the run had backed off to a small scale
    torch.save(state, out / "last.pt")
    train(_cfg(small_folder, out, epochs=2, precision="fp16", resume=True))
    assert read_checkpoint(out / "last.pt")["scaler"]["scale"] == 8.0  # restored, not reset


# --- mid-epoch checkpoints -----------------------------------------------------------------------


class _Crash(Exception):
    pass


def test_stop_mid_epoch_then_resume_matches_uninterrupted(small_folder, tmp_path, monkeypatch):
    kw = dict(epochs=2, batch_size=2, lr_schedule="cosine", save_every=1e-9)  # save every batch
    train(_cfg(small_folder, tmp_path / "full", **kw))

    real, calls = train_module.nll, []

    def crash_on_step_13(logits, x):
        calls.append(1)
        if len(calls) == 13:  # epoch 2 (9 batches per epoch), batch 4
            raise _Crash
        return real(logits, x)

    monkeypatch.setattr(train_module, "nll", crash_on_step_13)
    with pytest.raises(_Crash):
        train(_cfg(small_folder, tmp_path / "parts", **kw))
    state = read_checkpoint(tmp_path / "parts" / "last.pt")
    assert state["epoch"] == 1 and state["position"]["epoch"] == 2
    assert state["position"]["step"] == 3 and state["position"]["seen"] == 6
    monkeypatch.setattr(train_module, "nll", real)
    train(_cfg(small_folder, tmp_path / "parts", resume=True, **kw))
    assert _same_weights(tmp_path / "full" / "last.pt", tmp_path / "parts" / "last.pt")
    full = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    parts = (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()
    for a, b in zip(full, parts, strict=True):
        a, b = json.loads(a), json.loads(b)
        for key in ("epoch", "train_bits_per_dim", "val_bits_per_dim", "train_images", "lr"):
            assert a[key] == b[key], key


def test_kill_9_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    from conftest import write_image_folder

    folder = write_image_folder(tmp_path / "images", 600, size=16)  # an epoch of a few seconds
    common = [sys.executable, "-m", "pixelrnn_utils", "train", "--data", str(folder)]
    common += ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--image-size", "16"]
    common += ["--val-limit", "8", "--epochs", "1", "--precision", "fp32", "--save-every", "0.002"]
    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [*common, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    # killed as soon as the first last.pt appears: a mid-epoch one (saves come every 0.12 s of
    # an epoch of seconds). Reading it first could take long enough for the epoch to end.
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    state = read_checkpoint(killed / "last.pt")
    assert state["epoch"] == 0 and state["position"]["step"] > 0, "expected a mid-epoch checkpoint"
    subprocess.run(
        [*common, "--out", str(killed), "--resume"], check=True, env=env, capture_output=True
    )
    full = tmp_path / "full"
    subprocess.run([*common, "--out", str(full)], check=True, env=env, capture_output=True)
    assert _same_weights(full / "last.pt", killed / "last.pt")
    assert read_checkpoint(killed / "last.pt")["position"] is None
    assert not [p for p in os.listdir(killed) if p.endswith(".tmp")]


def test_cosine_schedule():
    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine")
    assert learning_rate(cfg, 0, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg, 50, 100) == pytest.approx(5e-4)
    assert learning_rate(cfg, 100, 100) == pytest.approx(0.0, abs=1e-12)
    values = [learning_rate(cfg, s, 100) for s in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert learning_rate(TrainConfig(lr=1e-3), 77, 100) == 1e-3  # constant: the seed's


def test_old_checkpoint_settings_still_load():
    cfg = TrainConfig.from_dict({"amp": False, "hidden": 8, "removed_option": 1})
    assert cfg.precision == "fp32" and cfg.hidden == 8
    assert TrainConfig.from_dict({"amp": True}).precision == "auto"


def test_shipped_checkpoint_evaluates_without_a_precision_entry():
    from pixelrnn_utils.data import project_root

    model, info = load_checkpoint(project_root() / "checkpoints" / "row_lstm_cifar10.pt")
    cfg = TrainConfig.from_dict(info["train"])
    assert cfg.hidden == 64 and math.isfinite(cfg.lr)


def test_compiled_training_matches_eager(small_folder, tmp_path):
    """The --compile path (torch.compile; on CUDA with CUDA graphs) is proved equal to eager."""
    kw = dict(epochs=1, limit=8, image_size=8, precision="fp32", save_every=0)
    eager = train(_cfg(small_folder, tmp_path / "eager", **kw))
    compiled = train(_cfg(small_folder, tmp_path / "compiled", compile=True, **kw))
    assert compiled["first_step_seconds"] > 0  # the compile time is reported
    a = read_checkpoint(tmp_path / "eager" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)
    assert compiled["val_bits_per_dim"] == pytest.approx(eager["val_bits_per_dim"], abs=1e-4)


def test_mid_epoch_resume_with_another_batch_size_is_refused(small_folder, tmp_path, monkeypatch):
    from pixelrnn_utils.checkpoint import CheckpointError

    real, calls = train_module.nll, []

    def crash_on_step_3(logits, x):
        calls.append(1)
        if len(calls) == 3:
            raise _Crash
        return real(logits, x)

    monkeypatch.setattr(train_module, "nll", crash_on_step_3)
    with pytest.raises(_Crash):
        train(_cfg(small_folder, tmp_path / "run", epochs=1, batch_size=2, save_every=1e-9))
    monkeypatch.setattr(train_module, "nll", real)
    with pytest.raises(CheckpointError, match="batch_size=2"):
        train(_cfg(small_folder, tmp_path / "run", epochs=1, batch_size=4, resume=True))
