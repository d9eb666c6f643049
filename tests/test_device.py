"""Device handling, tested on a pretend GPU (``fake_cuda``) so that CI, which has none, catches
the bugs a learner would only meet on Colab or a lent GPU: CPU tensors meeting CUDA ones, CUDA
tensors where the CPU is required, ``cuda`` without an index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fake_cuda import fake_cuda
from torch.utils.data import DataLoader, TensorDataset

from conftest import tiny_run_config
from pixelrnn_utils.model import build_model
from pixelrnn_utils.sampling import sample
from pixelrnn_utils.train import evaluate, train

ROOT = Path(__file__).resolve().parents[1]


def test_fake_cuda_is_strict_about_devices(monkeypatch):
    """The harness itself: what a GPU refuses, it refuses; what a GPU allows, it allows."""
    with fake_cuda(monkeypatch):
        x = torch.ones(2, 3).to("cuda")
        assert x.device == torch.device("cuda", 0) and (x * 2).is_cuda
        assert (x + torch.tensor(1.0)).is_cuda  # a CPU scalar is fine
        assert x[torch.tensor([True, False])].shape == (1, 3)  # so are CPU indices
        assert not x.cpu().is_cuda and float(x.sum()) == 6.0
        for mixed in (lambda: x + torch.ones(2, 3), lambda: torch.cat([x, torch.ones(2, 3)])):
            with pytest.raises(RuntimeError, match="same device"):
                mixed()
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        with pytest.raises(ValueError):
            torch.cuda.set_device(torch.device("cuda"))
    assert not torch.cuda.is_available() or torch.cuda.device_count() > 0  # patches undone


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm", "pixelcnn", "gated_pixelcnn"])
def test_forward_backward_and_loss_on_gpu(arch, monkeypatch):
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=6, layers=1)
    x = torch.randint(0, 256, (2, 3, 5, 5))
    with fake_cuda(monkeypatch):
        model.to("cuda")
        logits = model(x.to("cuda"))
        assert logits.is_cuda and logits.shape == (2, 256, 3, 5, 5)
        loss = F.cross_entropy(logits, x.to("cuda"))
        loss.backward()
        assert all(p.grad.is_cuda for p in model.parameters() if p.grad is not None)
        with pytest.raises(RuntimeError, match="same device"):
            model(x)  # a CPU batch into a GPU model


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_both_samplers_with_prefix_on_gpu(arch, monkeypatch):
    torch.manual_seed(0)
    model = build_model(arch, 3, hidden=6, layers=1)
    given = torch.randint(0, 256, (2, 3, 4, 4))
    mask = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    with fake_cuda(monkeypatch):
        model.to("cuda")
        images = {
            method: sample(
                model,
                2,
                (3, 4, 4),
                method=method,
                prefix=(given, mask),  # CPU prefix, GPU model
                generator=torch.Generator().manual_seed(1),
            )
            for method in ("naive", "cached")
        }
        assert images["naive"].is_cuda  # on the model's device
        assert torch.equal(images["naive"], images["cached"])
        kept = mask.expand_as(given)
        assert torch.equal(images["cached"].cpu()[kept], given[kept])


def test_evaluate_on_gpu(monkeypatch):
    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=6, layers=1)
    loader = DataLoader(TensorDataset(torch.randint(0, 256, (5, 3, 4, 4)), torch.zeros(5)), 2)
    on_cpu = evaluate(model, loader, "cpu")
    with fake_cuda(monkeypatch):
        model.to("cuda")
        on_gpu = evaluate(model, loader, torch.device("cuda", 0))
        assert evaluate(model, loader) == on_gpu  # default: the model's device
    assert on_gpu["bits_per_dim"] == pytest.approx(on_cpu["bits_per_dim"], abs=1e-6)
    assert on_gpu["images"] == 5


def test_evaluate_refuses_a_model_on_another_device(monkeypatch):
    """Notebook 05's first version evaluated a CPU model with DEVICE = cuda."""
    model = build_model("row_lstm", 3, hidden=6, layers=1)
    loader = DataLoader(TensorDataset(torch.randint(0, 256, (2, 3, 4, 4)), torch.zeros(2)), 2)
    with fake_cuda(monkeypatch), pytest.raises((ValueError, RuntimeError), match="device"):
        evaluate(model, loader, torch.device("cuda", 0))


@pytest.mark.parametrize("device", ["cuda", "cuda:0", None])
def test_train_and_resume_on_gpu(device, small_folder, tmp_path, monkeypatch):
    """``--device cuda`` (no index) trains; ``--resume`` reads the checkpoint and continues.

    Crashed on a GPU: ``torch.cuda.set_device(torch.device("cuda"))`` raises ValueError, and a
    checkpoint read with ``map_location=cuda`` put the CPU RNG state on the GPU.
    """
    cfg = tiny_run_config(small_folder, tmp_path / "run", epochs=1, device=device)
    with fake_cuda(monkeypatch):
        first = train(cfg)
        assert first["device"] == "Fake GPU (CPU)"
        cfg.epochs, cfg.resume = 2, True
        second = train(cfg)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0] == first and rows[1] == second


def test_compile_on_gpu_drops_the_smaller_last_batch():
    """With CUDA graphs one batch shape; a smaller last batch would compile everything again."""
    from pixelrnn_utils.train import TrainConfig, _drop_last, _steps_per_epoch

    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")
    compiled = TrainConfig(compile=True)
    assert _drop_last(compiled, gpu, 1) and _steps_per_epoch(45_000, compiled, True) == 2812
    assert not _drop_last(compiled, cpu, 1) and not _drop_last(TrainConfig(), gpu, 1)
    assert _steps_per_epoch(45_000, TrainConfig(), False) == 2813


def test_ranks_get_the_same_number_of_batches(small_folder):
    """31,999 images on 2 ranks were 16,000 and 15,999: 1,000 and 999 batches, then a hang."""
    from pixelrnn_utils.train import TrainConfig, _epoch_order

    data = list(range(31_999))
    cfg = TrainConfig(batch_size=16)
    orders = [_epoch_order(data, cfg, 1, rank, 2) for rank in range(2)]
    assert len(orders[0]) == len(orders[1]) == 15_999
    assert not set(orders[0]) & set(orders[1])
    assert orders[0] != _epoch_order(data, cfg, 2, 0, 2)  # a new shuffle every epoch


def test_tf32_is_off_while_training_evaluating_and_sampling(small_folder, tmp_path, monkeypatch):
    """Exact float32: TF32 convolutions would change evaluate's bits/dim and the samples."""
    import pixelrnn_utils.evaluation as evaluation
    import pixelrnn_utils.sampling as sampling
    import pixelrnn_utils.train as training

    seen: dict[str, list] = {"loss": [], "evaluate": [], "draw": []}

    def spy(name, real):
        def wrapped(*args, **kwargs):
            flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            seen[name].append(flags)
            return real(*args, **kwargs)

        return wrapped

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # GPU defaults
    monkeypatch.setattr(training, "nll", spy("loss", training.nll))
    monkeypatch.setattr(
        evaluation, "nll_per_subpixel", spy("evaluate", evaluation.nll_per_subpixel)
    )
    monkeypatch.setattr(sampling, "draw", spy("draw", sampling.draw))
    try:
        train(tiny_run_config(small_folder, tmp_path / "run", epochs=1, device="cpu"))
        model = build_model("row_lstm", 3, hidden=6, layers=1)
        sample(model, 1, (3, 2, 2), method="cached", generator=torch.Generator().manual_seed(0))
        restored = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert all(seen.values()), seen
    assert all(flags == (False, False) for calls in seen.values() for flags in calls)
    assert restored == (True, True)


def _course_copy(name: str, tmp_path: Path) -> Path:
    """A copy of the course (package and notebook ``name``; data, checkpoints and ../shared
    linked) whose ``runs/`` folder is its own: nbval may run the same notebook at the same time in
    another test worker, in the repository's ``runs/``."""
    root = tmp_path / "course"
    shutil.copytree(
        ROOT / "pixelrnn_utils",
        root / "pixelrnn_utils",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (root / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / name, root / "notebooks" / name)
    for linked in ("data", "checkpoints"):
        (root / linked).symlink_to(ROOT / linked)
    if (ROOT.parent / "shared").exists():
        (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    return root


def run_notebook_on_fake_gpu(name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Notebook ``name`` top to bottom in smoke mode, in a fresh process, on the pretend GPU, in a
    copy of the course (:func:`_course_copy`)."""
    root = _course_copy(name, tmp_path)
    script = f"""
import sys
sys.path[:0] = [{str(ROOT / "tests")!r}, {str(root)!r}, {str(ROOT)!r}]
import pytest
from fake_cuda import fake_cuda
from benchmarks.run_notebook import run_notebook
with fake_cuda(pytest.MonkeyPatch()):
    run_notebook({str(root / "notebooks" / name)!r})
"""
    env = {
        **__import__("os").environ,
        "PIXELRNN_SMOKE": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(root),
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=root / "notebooks",
        env=env,
        timeout=900,
    )


@pytest.mark.parametrize("name", ["05_training_gpu.ipynb", "06_sampling.ipynb"])
def test_notebook_runs_on_a_gpu(name, tmp_path):
    """Every cell of the notebook, with DEVICE = cuda: no cell mixes CPU and GPU tensors."""
    done = run_notebook_on_fake_gpu(name, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "DEVICE=cuda" in done.stdout


def test_gpu_check_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_check.sh (never run on a GPU yet) runs every step on a CPU, tiny."""
    from conftest import write_image_folder

    data = write_image_folder(tmp_path / "data", 80, size=32, classes=4)
    env = {
        **__import__("os").environ,
        "OUT": str(tmp_path / "out"),
        "PIXELRNN_DATA": str(data),
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "GPU CHECK OK (cpu)" in done.stdout
    for name, epochs in (("eager", 1), ("graphs", 2), ("fp32", 1)):  # graphs: then resumed
        assert f"seed {name:>7} epoch {epochs}:" in done.stdout
    assert "0 draws differ" in done.stdout  # naive and cached sampling, draw by draw
    assert "largest gradient difference 0.00e+00" in done.stdout  # compiled (aot_eager) = eager
    assert done.stdout.count("ran top to bottom") == 2


def _record_graphs_on_fake_gpu(monkeypatch) -> dict:
    """A stand-in for ``torch.cuda.make_graphed_callables`` on the fake GPU (no graphs there):
    it records what it was asked to record and, like the real one, replaces the module's forward,
    counting the replays."""
    seen = {"recorded": [], "replays": 0, "autocast_cache": []}

    def make_graphed_callables(module, sample_args, **options):
        seen["recorded"].append([tuple(a.shape) for a in sample_args])
        seen["autocast_cache"].append(torch.is_autocast_cache_enabled())
        original = module.forward

        def replay(*args):
            seen["replays"] += 1
            return original(*args)

        module.forward = replay
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", make_graphed_callables)
    return seen


@pytest.mark.parametrize("classes", [None, 2])
def test_cuda_graphs_record_the_step_once_and_run_a_smaller_batch_eagerly(
    classes, small_folder, tmp_path, monkeypatch
):
    """On CUDA the step's forward and backward are recorded at the first batch (autocast's
    cache off) and replayed for every batch of that shape; the last, smaller batch of an epoch
    (18 training images at batch 4: 2 left) runs the model's own forward, as evaluation does."""
    options = {} if classes is None else {"classes": classes}
    cfg = tiny_run_config(
        small_folder, tmp_path / "run", epochs=2, device="cuda", batch_size=4, options=options
    )
    with fake_cuda(monkeypatch):
        seen = _record_graphs_on_fake_gpu(monkeypatch)
        summary = train(cfg)
    shapes = [(4, 3, 8, 8)] + ([] if classes is None else [(4,)])
    assert seen["recorded"] == [shapes] and seen["autocast_cache"] == [False]
    assert summary["cuda_graphs"] is True and summary["train_images"] == 18
    assert seen["replays"] == 2 * 4  # two epochs of four full batches; the fifth: eager


@pytest.mark.parametrize("where", ["--no-cuda-graphs", "--compile", "cpu"])
def test_cuda_graphs_only_on_cuda_and_when_asked(where, small_folder, tmp_path, monkeypatch):
    cfg = tiny_run_config(
        small_folder,
        tmp_path / "run",
        epochs=1,
        device="cpu" if where == "cpu" else "cuda",
        cuda_graphs=where != "--no-cuda-graphs",
        compile=where == "--compile",
    )
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # no compiler on the fake GPU
    with fake_cuda(monkeypatch):
        seen = _record_graphs_on_fake_gpu(monkeypatch)
        summary = train(cfg)
    assert seen["recorded"] == [] and "cuda_graphs" not in summary
