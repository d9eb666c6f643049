"""The `pixelrnn` command line end to end on a tiny ImageFolder."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from pixelrnn_utils.cli import main
from pixelrnn_utils.data import project_root


def _run(capsys, *argv) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_train_resume_evaluate_sample(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    common = [
        "--data",
        str(tiny_folder),
        "--hidden",
        "8",
        "--layers",
        "1",
        "--out",
        str(out),
        "--limit",
        "96",
    ]
    _run(capsys, "train", *common, "--epochs", "1", "--batch_size", "4", "--lr", "5e-3")
    assert json.loads((out / "metrics.jsonl").read_text())["epoch"] == 1
    _run(capsys, "train", *common, "--epochs", "2", "--batch-size", "4", "--lr", "5e-3", "--resume")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]

    result = json.loads(
        _run(
            capsys,
            "evaluate",
            "--checkpoint",
            str(out / "last.pt"),
            "--data",
            str(tiny_folder),
            "--json",
        )
    )
    assert 0 < result["bits_per_dim"] < 8
    assert result["images"] == 10  # the run's held-out 10% of 96 images
    assert result["bits_per_dim"] == pytest.approx(rows[-1]["val_bits_per_dim"], abs=1e-4)

    png = tmp_path / "grid.png"
    _run(
        capsys,
        "sample",
        "--checkpoint",
        str(out / "last.pt"),
        "--n",
        "4",
        "--size",
        "8",
        "--out",
        str(png),
    )
    with Image.open(png) as grid:
        assert grid.mode == "RGB" and grid.size[0] > 16


def test_clear_errors(tiny_folder, tmp_path, capsys):
    assert (
        main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(tiny_folder)])
        == 2
    )
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    shipped = str(project_root() / "checkpoints" / "row_lstm_cifar10.pt")
    for option in ("--n", "--size"):
        out = tmp_path / "never.png"
        assert main(["sample", "--checkpoint", shipped, option, "0", "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"error: {option} must be at least 1, got 0\n"
        assert not out.exists()


def test_module_entry_point_help():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pixelrnn_utils", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "train" in result.stdout and "sample" in result.stdout


def test_precision_options(tiny_folder, tmp_path, capsys):
    common = ["train", "--data", str(tiny_folder), "--hidden", "6", "--layers", "1"]
    common += ["--epochs", "1", "--limit", "8", "--val-limit", "4", "--image-size", "8"]
    _run(capsys, *common, "--out", str(tmp_path / "a"), "--no-amp")
    _run(capsys, *common, "--out", str(tmp_path / "b"), "--precision", "bf16")
    rows = [json.loads((tmp_path / r / "metrics.jsonl").read_text()) for r in "ab"]
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    with pytest.raises(SystemExit):
        main([*common, "--out", str(tmp_path / "c"), "--precision", "fp8"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--epochs", "-1"], "--epochs must be a positive integer"),
        (["--save-every", "-5"], "--save-every must be >= 0"),
    ],
)
def test_bad_training_options_fail_before_any_work(tmp_path, capsys, monkeypatch, option, message):
    from pixelrnn_utils import splits

    def no_decoding(*args, **kwargs):
        raise AssertionError("data was touched before the options were checked")

    monkeypatch.setattr(splits, "count_images", no_decoding)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path), "--out", str(out), *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not out.exists()


def test_warnings_are_one_line_that_says_what_to_do(tiny_folder, tmp_path, capsys):
    common = ["--data", str(tiny_folder), "--hidden", "4", "--layers", "1", "--limit", "16"]
    common += ["--lr-schedule", "cosine", "--out", str(tmp_path / "run")]
    _run(capsys, "train", *common, "--epochs", "1")
    assert main(["train", *common, "--epochs", "2", "--resume"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line.lower()]
    assert len(err) == 1 and err[0].startswith("warning: --resume with another learning-rate")
    assert "resume with --epochs 1 --lr-schedule cosine" in err[0] and ".py:" not in err[0]


def test_a_new_run_never_overwrites_an_earlier_one(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data", str(tiny_folder), "--hidden", "4", "--layers", "1", "--limit", "16"]
    _run(capsys, "train", *common, "--epochs", "1", "--out", str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["train", *common, "--epochs", "2", "--out", str(out)]) == 2  # --resume forgotten
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already holds a run" in err and "--resume" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["train", *common, "--epochs", "1", "--out", str(out), "--resume"]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (
        main(["train", *common, "--epochs", "1", "--out", str(tmp_path / "new"), "--resume"]) == 0
    )
    assert "so this is a new run" in capsys.readouterr().out


def test_out_that_is_a_file_is_refused(tiny_folder, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main(["train", "--data", str(tiny_folder), "--out", str(notes)]) == 2
    assert "is a file" in capsys.readouterr().err and notes.read_text() == "my notes"


def test_a_text_file_is_not_a_checkpoint(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a checkpoint\n")
    assert main(["evaluate", "--checkpoint", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a checkpoint" in err and "Traceback" not in err


def test_sample_checks_its_output_before_sampling(tmp_path, capsys, monkeypatch):
    from pixelrnn_utils import sampling

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled before checking --out")

    monkeypatch.setattr(sampling, "sample", no_sampling)
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    ckpt = str(project_root() / "checkpoints" / "row_lstm_cifar10.pt")
    assert main(["sample", "--checkpoint", ckpt, "--out", str(blocked / "x.png")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_given_train_options_are_the_ones_typed():
    from pixelrnn_utils.cli import _given_train_options

    assert _given_train_options(["train"]) == set()
    argv = ["train", "--lr", "1e-3", "--no-amp", "--skip", "--batch_size", "16", "--out", "x"]
    # typed at its default value is still typed; both spellings map to one setting
    assert _given_train_options(argv) == {"lr", "precision", "skip", "batch_size", "out"}
    assert _given_train_options(["train", "--no-residual"]) == {"residual"}


def test_resume_takes_the_runs_own_settings(tiny_folder, tmp_path, capsys, monkeypatch):
    """`pixelrnn train --out DIR --resume` continues a run without its options repeated."""
    import os
    import signal

    import torch

    from pixelrnn_utils import train as train_module

    monkeypatch.delenv("PIXELRNN_DATA", raising=False)
    started = ["train", "--data", str(tiny_folder), "--arch", "pixelcnn", "--hidden", "4"]
    started += ["--layers", "1", "--skip", "--limit", "16", "--val-limit", "8", "--batch-size", "4"]
    started += ["--seed", "3", "--lr", "2e-3", "--lr-schedule", "cosine", "--epochs", "2"]
    started += ["--precision", "fp32"]  # not what auto picks on a CPU with native bf16
    _run(capsys, *started, "--out", str(tmp_path / "full"))
    real_step, calls = train_module.train_step, []

    def step_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # inside epoch 1
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", step_then_ctrl_c)
    out = tmp_path / "parts"
    assert main([*started, "--out", str(out)]) == 130
    monkeypatch.setattr(train_module, "train_step", real_step)
    capsys.readouterr()

    monkeypatch.setenv("PIXELRNN_DATA", str(tmp_path / "other"))  # another dataset by now
    assert main(["train", "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "the run's own settings" in err and "arch='pixelcnn'" in err and "epochs=2" in err
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    resumed = torch.load(out / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["config"] == full["config"]
    keys = ("arch", "hidden", "layers", "batch_size", "lr", "lr_schedule", "seed", "limit")
    assert {k: resumed["train"][k] for k in keys} == {k: full["train"][k] for k in keys}
    assert resumed["train"]["data"] == str(tiny_folder)
    assert resumed["train"]["options"] == {"skip": True}
    assert resumed["train"]["precision"] == resumed["train"]["precision_requested"] == "fp32"
    # the same steps as the uninterrupted run, to the bit
    for name, weight in full["model"].items():
        assert torch.equal(resumed["model"][name], weight), name


def test_resume_options_given_override_the_runs(tiny_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIXELRNN_DATA", raising=False)
    out = tmp_path / "run"
    started = ["--data", str(tiny_folder), "--hidden", "4", "--layers", "1", "--limit", "16"]
    _run(capsys, "train", *started, "--epochs", "1", "--out", str(out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # another model: refused, naming both, and nothing in the run folder changes
    assert main(["train", "--out", str(out), "--resume", "--hidden", "8"]) == 2
    err = capsys.readouterr().err
    assert "error: cannot resume" in err and "another --out" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # more epochs: taken, the rest from the run
    _run(capsys, "train", "--out", str(out), "--resume", "--epochs", "2")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_resume_checks_options_against_the_runs_architecture(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    started = ["--data", str(tiny_folder), "--arch", "diagonal_bilstm", "--no-full-context"]
    started += ["--hidden", "4", "--layers", "1", "--limit", "8", "--val-limit", "4"]
    _run(capsys, "train", *started, "--image-size", "8", "--epochs", "1", "--out", str(out))
    # --no-full-context repeated without --arch: the run's arch is diagonal_bilstm, so it applies
    _run(capsys, "train", "--out", str(out), "--resume", "--no-full-context", "--epochs", "2")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
