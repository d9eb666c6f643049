"""The trainer: it learns, it resumes exactly, it survives kill -9, it stops on NaN, it runs DDP."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_run_config
from pixelrnn_utils import train as train_module
from pixelrnn_utils.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from pixelrnn_utils.train import TrainConfig, TrainingDiverged, train


def _cfg(folder: Path, out: Path, **kw) -> TrainConfig:
    return tiny_run_config(folder, out, **kw)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["model"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_tiny_epochs_lower_the_loss(small_folder, tmp_path):
    train(_cfg(small_folder, tmp_path / "run", epochs=3))
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_bits_per_dim"] < rows[0]["train_bits_per_dim"] - 0.1
    assert rows[-1]["val_bits_per_dim"] < rows[0]["val_bits_per_dim"]
    assert all(r["val_bits_per_dim"] < 8.5 for r in rows)
    model, info = load_checkpoint(tmp_path / "run" / "best.pt")
    assert info["epoch"] == min(rows, key=lambda r: r["val_bits_per_dim"])["epoch"]


def test_resume_equals_uninterrupted_run(small_folder, tmp_path):
    train(_cfg(small_folder, tmp_path / "full", epochs=2))
    train(_cfg(small_folder, tmp_path / "parts", epochs=1))
    train(_cfg(small_folder, tmp_path / "parts", epochs=2, resume=True))
    assert _same(_weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "parts" / "last.pt"))
    lines = (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_split_seed_fixes_the_images_while_seed_changes_the_weights(small_folder, tmp_path):
    from pixelrnn_utils.train import load_splits

    def images(cfg: TrainConfig) -> list[list[int]]:
        return [sorted(part.indices) for part in load_splits(cfg)]

    base = _cfg(small_folder, tmp_path / "a")
    assert images(_cfg(small_folder, tmp_path / "b", seed=1)) != images(base)  # seed cuts the split
    assert images(_cfg(small_folder, tmp_path / "b", seed=1, split_seed=0)) == images(base)
    train(_cfg(small_folder, tmp_path / "a", epochs=1))
    train(_cfg(small_folder, tmp_path / "b", epochs=1, seed=1, split_seed=0))
    assert not _same(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"))


def test_resume_warns_when_it_moves_a_cosine_schedule(small_folder, tmp_path):
    import warnings

    out = tmp_path / "run"
    train(_cfg(small_folder, out, epochs=1, lr_schedule="cosine"))  # the rate reached 0
    with pytest.warns(UserWarning, match=r"where the old schedule had 0\b.*--epochs 1 "):
        train(_cfg(small_folder, out, epochs=2, resume=True, lr_schedule="cosine"))
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["lr"] > 0
    with warnings.catch_warnings():  # the same schedule: nothing to say
        warnings.simplefilter("error")
        train(_cfg(small_folder, out, epochs=2, resume=True, lr_schedule="cosine"))


def test_resume_with_other_architecture_is_refused(small_folder, tmp_path):
    train(_cfg(small_folder, tmp_path / "run", epochs=1))
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(_cfg(small_folder, tmp_path / "run", epochs=2, resume=True, arch="pixelcnn"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(small_folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(_cfg(small_folder, out, epochs=1))
    before = _weights(out / "last.pt")
    real_nll = train_module.nll
    monkeypatch.setattr(train_module, "nll", lambda logits, x: real_nll(logits, x) * float("nan"))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(_cfg(small_folder, out, epochs=2, resume=True))
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert _same(before, _weights(out / "last.pt"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelrnn_utils", *args]


def test_kill_9_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    from conftest import write_image_folder

    folder = write_image_folder(tmp_path / "images", 320, size=8)
    common = [
        "train",
        "--data",
        str(folder),
        "--hidden",
        "6",
        "--layers",
        "1",
        "--batch-size",
        "2",
        "--image-size",
        "8",
        "--limit",
        "300",
        "--val-limit",
        "16",
    ]
    killed = tmp_path / "killed"
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        _cli(*common, "--epochs", "3", "--out", str(killed)),
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    log = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().strip()):
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    errors.close()
    assert read_checkpoint(killed / "last.pt")["epoch"] == 1, "expected the kill to land in epoch 2"
    subprocess.run(
        _cli(*common, "--epochs", "3", "--out", str(killed), "--resume"),
        check=True,
        capture_output=True,
    )
    full = tmp_path / "full"
    subprocess.run(
        _cli(*common, "--epochs", "3", "--out", str(full)), check=True, capture_output=True
    )
    assert _same(_weights(full / "last.pt"), _weights(killed / "last.pt"))
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2, 3]
    assert not [p for p in os.listdir(killed) if p.endswith(".tmp")]


def test_ctrl_c_saves_the_exact_point_and_resume_matches_uninterrupted(
    small_folder, tmp_path, monkeypatch
):
    train(_cfg(small_folder, tmp_path / "full", epochs=2))
    real_step, calls = train_module.train_step, []

    def step_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # inside epoch 1 (several steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", step_then_ctrl_c)
    out = tmp_path / "parts"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job, else Python's own
    with pytest.raises(KeyboardInterrupt, match="after step 3 of .*--resume"):
        train(_cfg(small_folder, out, epochs=2))
    assert len(calls) == 3  # the step in flight finished, no further step ran
    assert read_checkpoint(out / "last.pt")["position"]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    monkeypatch.setattr(train_module, "train_step", real_step)
    train(_cfg(small_folder, out, epochs=2, resume=True))
    assert _same(_weights(tmp_path / "full" / "last.pt"), _weights(out / "last.pt"))


def test_ctrl_c_on_the_command_line(tmp_path):
    from conftest import write_image_folder

    folder = write_image_folder(tmp_path / "images", 320, size=8)
    out = tmp_path / "run"
    common = ["train", "--data", str(folder), "--hidden", "6", "--layers", "1", "--batch-size"]
    common += ["2", "--image-size", "8", "--limit", "300", "--val-limit", "16", "--epochs", "50"]
    proc = subprocess.Popen(
        _cli(*common, "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().strip()):
        time.sleep(0.05)  # epoch 1 done: the run is inside its Ctrl-C handling
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: stopped" in err and "--resume" in err and "Traceback" not in err
    state = read_checkpoint(out / "last.pt")
    stopped = re.search(r"stopped in epoch (\d+) after step (\d+) of", err)
    if stopped:  # in the middle of an epoch: last.pt holds that step
        epoch, step = (int(g) for g in stopped.groups())
        assert (state["position"]["epoch"], state["position"]["step"]) == (epoch, step)
        assert state["epoch"] == epoch - 1
    else:  # during an epoch's validation or saving: last.pt holds the whole epoch
        epoch = int(re.search(r"stopped after epoch (\d+)", err).group(1))
        assert state["epoch"] == epoch and not state.get("position")


def test_ddp_gloo_two_processes(small_folder, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            "-m",
            "pixelrnn_utils",
            "train",
            "--data",
            str(small_folder),
            "--hidden",
            "6",
            "--layers",
            "1",
            "--batch-size",
            "4",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--image-size",
            "8",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["world_size"] == 2
    model, info = load_checkpoint(out / "last.pt")
    assert info["epoch"] == 2 and rows[-1]["val_bits_per_dim"] < 8.5


FAULTS = """
import resource, sys, torch
from pixelrnn_utils.train import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def cycle():  # what a training step does with its large tensors: allocate, fill, free
    torch.ones(16 * 1024 * 1024).sum()  # 64 MB
for _ in range(5):  # the first few cycles grow the heap
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cycle()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="keep_freed_memory tunes glibc's malloc",
)
def test_keep_freed_memory_stops_page_faults_on_every_step():
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], int(out[1])

    kept, with_keep = faults("keep")
    plain, without = faults("plain")
    assert (kept, plain) == ("True", "False")
    if with_keep >= without / 20:  # the kernel may reclaim idle pages (DAMON) during one try
        with_keep = min(with_keep, *(faults("keep")[1] for _ in range(2)))
    assert without > 5 * 10_000  # 5 x 64 MB faulted in again: 16,384 pages of 4 kB each time
    assert with_keep < without / 20  # the freed block is reused, already in memory


def test_train_keeps_freed_memory_on_the_cpu(small_folder, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(train_module, "keep_freed_memory", lambda: calls.append(1) or True)
    train(tiny_run_config(small_folder, tmp_path / "run", epochs=1))
    assert calls == [1]
