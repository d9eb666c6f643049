"""Bad or unusual input to `pixelrnn train | evaluate | sample`, as a new user types it (issue 31).

The house rule: one line ``error: ...`` that says what to do, exit status 2, no traceback, no file
in ``--out`` changed, and every check that can run before the work runs before any data is
decoded or any file is written. Where the input is fine but surprising, a one-line warning.
Tiny runs throughout: 8x8 images, hidden 6, one layer, a handful of images.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_image_folder
from pixelrnn_utils import build_model, save_checkpoint
from pixelrnn_utils.checkpoint import export_weights
from pixelrnn_utils.cli import build_parser, main
from pixelrnn_utils.data import binarized_mnist_file, fashion_mnist_4_file, project_root

TINY = ["--hidden", "6", "--layers", "1", "--image-size", "8", "--device", "cpu"]
TINY += ["--limit", "8", "--val-limit", "4", "--batch-size", "4"]


def _train(folder: Path | str, out: Path | str, *options: str) -> list[str]:
    """The argv of a seconds-long run (options given later win)."""
    return ["train", "--data", str(folder), *TINY, "--epochs", "1", "--out", str(out), *options]


def _fails(capsys, *argv: str) -> str:
    """Run the CLI, which must refuse: exit status 2, no traceback, one ``error:`` line (the last
    on stderr; a line before it can only be --resume's note of the settings it took)."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    return errors[0]


def _warnings(capsys, *argv: str) -> list[str]:
    """Run the CLI, which must succeed; its ``warning:`` lines (each one line)."""
    assert main(list(argv)) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and ".py:" not in err
    return [line for line in err.splitlines() if "warning" in line.lower()]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, byte for byte."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _nothing_loaded(monkeypatch) -> None:
    """Make decoding data or loading a checkpoint fail the test: checks must come first."""

    def touched(*args, **kwargs):
        raise AssertionError("data or a checkpoint was loaded before the input was checked")

    from pixelrnn_utils import checkpoint, data, splits

    for module in (data, splits):  # splits: where a run's data is loaded
        monkeypatch.setattr(module, "load_dataset", touched)
        monkeypatch.setattr(module, "count_images", touched)
    monkeypatch.setattr(checkpoint, "load_checkpoint", touched)


@pytest.fixture
def run(small_folder, tmp_path, capsys) -> Path:
    """A finished one-epoch run: last.pt, best.pt, metrics.jsonl."""
    out = tmp_path / "run"
    assert main(_train(small_folder, out)) == 0
    capsys.readouterr()
    return out


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """An untrained RGB Row LSTM (h=6, one layer) saved as a checkpoint."""
    return save_checkpoint(tmp_path / "tiny.pt", build_model("row_lstm", 3, hidden=6, layers=1))


# --- 1. data loss: --resume without last.pt ---------------------------------------------------


def test_resume_without_last_pt_never_overwrites_best_pt(run, small_folder, capsys):
    (run / "last.pt").unlink()  # best.pt and metrics.jsonl remain
    before = _files(run)
    for resume in (["--resume"], []):
        err = _fails(capsys, *_train(small_folder, run, "--epochs", "2", *resume))
        assert "best.pt and metrics.jsonl" in err and "no last.pt" in err and "--out" in err
        assert _files(run) == before
    # the advice works: best.pt holds everything a run continues from
    assert "copy" in err
    shutil.copy(run / "best.pt", run / "last.pt")
    assert main(_train(small_folder, run, "--epochs", "2", "--resume")) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


# --- 2. sample: --out checked before the work, nothing left behind, nothing replaced ---------


@pytest.mark.parametrize("name", ["x.txt", "samples"])
def test_sample_refuses_a_name_that_is_no_image_before_sampling(
    name, tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    _nothing_loaded(monkeypatch)
    out = tmp_path / "new" / name
    err = _fails(capsys, "sample", "--checkpoint", str(tiny_checkpoint), "--out", str(out))
    assert ".png" in err and not (tmp_path / "new").exists()


def test_a_failed_sample_leaves_no_folder_behind(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "x.png"
    argv = ["sample", "--checkpoint", str(tiny_checkpoint), "--class", "3", "--out", str(out)]
    assert "not class-conditional" in _fails(capsys, *argv)
    assert not (tmp_path / "new").exists()


def test_sample_keeps_an_existing_image_unless_told(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "grid.png"
    Image.new("RGB", (4, 4), "red").save(out)
    before = out.read_bytes()
    argv = ["sample", "--checkpoint", str(tiny_checkpoint), "--n", "2", "--size", "4"]
    argv += ["--device", "cpu", "--out", str(out)]
    err = _fails(capsys, *argv)
    assert "already exists" in err and "--overwrite" in err and out.read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0
    assert out.read_bytes() != before
    with Image.open(out) as grid:
        assert grid.size == (14, 8)  # two 4x4 samples in a row, 2 pixels of padding


# --- 3. tracebacks: a checkpoint without optimizer state, damaged shipped data -----------------


def test_resume_from_a_shipped_checkpoint_without_optimizer_state(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(
        project_root() / "checkpoints" / "row_lstm_fashion_mnist_4_classes.pt", out / "last.pt"
    )
    argv = ["train", "--out", str(out), "--resume", "--epochs", "6", "--limit", "8"]
    lines = _warnings(capsys, *argv, "--val-limit", "4", "--device", "cpu")
    about_optimizer = [line for line in lines if "optimizer" in line]
    assert len(about_optimizer) == 1 and "fresh Adam optimizer" in about_optimizer[0]
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 6


def test_resume_from_an_exported_checkpoint(run, small_folder, capsys):
    export_weights(run / "last.pt", run / "last.pt", dtype=torch.float32)  # weights only
    lines = _warnings(capsys, *_train(small_folder, run, "--epochs", "2", "--resume"))
    assert len(lines) == 1 and "no optimizer state" in lines[0]


def _damage(path: Path, how: str, original: Path) -> None:
    if how == "truncated":
        path.write_bytes(original.read_bytes()[:1000])
    elif how == "split missing":
        np.savez(path, nothing=np.zeros(3))
    elif how == "text":
        path.write_text("these are not the images\n")
    else:  # what a clone without Git LFS holds in place of a large file
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")


@pytest.mark.parametrize(
    ("source", "how"),
    [
        ("fashion_mnist_4", "truncated"),
        ("fashion_mnist_4", "split missing"),
        ("fashion_mnist_4", "text"),
        ("fashion_mnist_4", "lfs pointer"),
        ("binarized_mnist", "truncated"),
    ],
)
def test_a_damaged_shipped_data_file_says_how_to_restore_it(
    source, how, tmp_path, capsys, monkeypatch
):
    from pixelrnn_utils.datasets import shipped as shipped_module  # where the loaders look it up

    shipped = {"fashion_mnist_4": fashion_mnist_4_file, "binarized_mnist": binarized_mnist_file}
    damaged = tmp_path / f"{source}.npz"
    _damage(damaged, how, shipped[source]())
    monkeypatch.setattr(shipped_module, shipped[source].__name__, lambda: damaged)
    out = tmp_path / "run"
    err = _fails(capsys, "train", "--data", source, *TINY[:4], "--out", str(out))
    assert "is damaged" in err and "allow_pickle" not in err
    assert ("git lfs pull" if how == "lfs pointer" else "git checkout") in err
    assert not out.exists()


# --- 4. wrong diagnoses and hints ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "sample", "train"])
def test_device_cuda_without_a_gpu_says_so(command, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _nothing_loaded(monkeypatch)
    out = tmp_path / "out"
    argv = {
        "evaluate": ["evaluate", "--checkpoint", str(tiny_checkpoint)],
        "sample": ["sample", "--checkpoint", str(tiny_checkpoint), "--out", str(out / "x.png")],
        "train": ["train", "--data", str(tmp_path), "--out", str(out)],
    }[command]
    err = _fails(capsys, *argv, "--device", "cuda")
    assert "no GPU" in err and "--device cpu" in err and "corrupt" not in err
    assert not out.exists()


def test_evaluate_hints_name_evaluate_options(tmp_path, capsys):
    rgb_2_levels = build_model("row_lstm", 3, hidden=6, layers=1, levels=2)
    ckpt = save_checkpoint(tmp_path / "rgb.pt", rgb_2_levels)
    err = _fails(capsys, "evaluate", "--checkpoint", str(ckpt), "--data", "binarized_mnist")
    assert "3-channel" in err and "1-channel 28x28" in err
    assert "--channels" not in err and "--image-size" not in err  # train's options


def test_a_run_recorded_with_a_relative_path_resumed_from_elsewhere(
    small_folder, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("PIXELRNN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(_train(small_folder.name, "run")) == 0  # recorded as typed: "small"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    run = tmp_path / "run"
    before = _files(run)
    err = _fails(capsys, "train", "--out", "../run", "--resume", "--epochs", "2")
    assert "--data" in err and "PIXELRNN_DATA" not in err and _files(run) == before
    err = _fails(capsys, "evaluate", "--checkpoint", "../run/best.pt", "--device", "cpu")
    assert "--data" in err and "PIXELRNN_DATA" not in err
    err = _fails(capsys, "evaluate", "--checkpoint", "../run/best.pt", "--data", "binarized_mnist")
    assert "--data small" not in err and "recorded as small" in err  # not a path from here
    # the advice works
    assert (
        main(["train", "--out", "../run", "--resume", "--epochs", "2", "--data", "../small"]) == 0
    )


# --- 5. late checks ---------------------------------------------------------------------------


def test_multiscale_that_does_not_fit_the_image_is_refused_first(
    run, small_folder, tmp_path, capsys, monkeypatch
):
    (run / "metrics.jsonl").write_text('{"epoch": 1, "note": "a run\'s log"}\n')
    _nothing_loaded(monkeypatch)
    new = tmp_path / "new"
    err = _fails(capsys, *_train(small_folder, new, "--multiscale", "64"))
    assert "--multiscale must be a power of 2 that divides --image-size 8 (2, 4, 8)" in err
    assert not new.exists()
    err = _fails(
        capsys, "train", "--data", "binarized_mnist", "--multiscale", "8", "--out", str(new)
    )
    assert "--image-size 28 (2, 4)" in err and not new.exists()
    before = _files(run)
    _fails(capsys, "train", "--out", str(run), "--resume", "--multiscale", "16", "--epochs", "2")
    assert _files(run) == before
    for name in ("last.pt", "best.pt"):  # a folder that holds only a log keeps it
        (run / name).unlink()
    before = _files(run)
    _fails(capsys, *_train(small_folder, run, "--multiscale", "64"))
    assert _files(run) == before


@pytest.mark.parametrize("where", ["/proc", "a file"])
def test_out_that_cannot_be_written_is_refused_first(where, tmp_path, capsys, monkeypatch):
    if where == "/proc":
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc here")
        out = Path("/proc/run")
    else:
        (tmp_path / "notes.txt").write_text("my notes")
        out = tmp_path / "notes.txt" / "run"
    _nothing_loaded(monkeypatch)
    err = _fails(capsys, *_train(tmp_path, out))
    assert "cannot write" in err and "--out" in err


def test_evaluate_batch_size_0_is_refused_first(tiny_checkpoint, capsys, monkeypatch):
    _nothing_loaded(monkeypatch)
    err = _fails(capsys, "evaluate", "--checkpoint", str(tiny_checkpoint), "--batch-size", "0")
    assert err == "error: --batch-size must be at least 1, got 0"


def test_levels_the_data_does_not_have_are_refused_first(tmp_path, capsys, monkeypatch):
    _nothing_loaded(monkeypatch)
    out = tmp_path / "run"
    err = _fails(capsys, "train", "--data", "fashion_mnist_4", "--levels", "256", "--out", str(out))
    assert "fashion_mnist_4 has 4 levels per sub-pixel; use --levels 4" in err
    assert not out.exists()


# --- 6. silent wrong results --------------------------------------------------------------------


def test_a_checkpoint_with_flipped_bytes_is_refused(run, small_folder, capsys):
    best = run / "best.pt"
    data = bytearray(best.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(b ^ 0xFF for b in data[middle : middle + 2000])
    best.write_bytes(bytes(data))
    argv = ["evaluate", "--checkpoint", str(best), "--data", str(small_folder), "--device", "cpu"]
    err = _fails(capsys, *argv)
    assert "is damaged" in err and "checksum" in err


def test_a_folder_named_like_a_dataset_is_not_ignored_silently(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image_folder(tmp_path / "fashion_mnist_4", 8, size=8)
    argv = ["train", "--data", "fashion_mnist_4", *TINY[:4], "--limit", "8", "--val-limit", "4"]
    lines = _warnings(capsys, *argv, "--epochs", "1", "--device", "cpu", "--out", "run")
    assert (
        len(lines) == 1 and "not the folder" in lines[0] and "--data ./fashion_mnist_4" in lines[0]
    )


def test_classes_the_training_images_never_show_are_warned(tmp_path, capsys):
    three = write_image_folder(tmp_path / "three", 12, size=8, classes=3)
    lines = _warnings(capsys, *_train(three, tmp_path / "run", "--classes", "10", "--limit", "12"))
    assert len(lines) == 1 and "no label 3..9" in lines[0] and "--classes 3" in lines[0]


@pytest.mark.parametrize("part", ["training", "validation"])
def test_a_split_part_with_no_readable_image_is_refused(part, tmp_path, capsys):
    from pixelrnn_utils.data import split_indices

    folder = write_image_folder(tmp_path / "images", 8, size=8, classes=1)
    files = sorted(folder.rglob("*.png"))
    train_part, val_part = split_indices(len(files), 0.1, seed=0)
    for i in train_part if part == "training" else val_part:
        files[i].write_bytes(b"not an image")
    out = tmp_path / "run"
    argv = ["train", "--data", str(folder), *TINY[:6], "--epochs", "1", "--out", str(out)]
    err = _fails(capsys, *argv)
    assert f"{part} images" in err and "could be read" in err and not out.exists()


@pytest.mark.parametrize("temperature", ["1e-320", "inf", "nan", "0"])
def test_a_temperature_without_a_real_distribution_is_refused(
    temperature, tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    _nothing_loaded(monkeypatch)
    out = tmp_path / "x.png"
    argv = ["sample", "--checkpoint", str(tiny_checkpoint), "--temperature", temperature]
    err = _fails(capsys, *argv, "--out", str(out))
    assert "--temperature must be a finite number from 1e-06" in err and not out.exists()


# --- 7. the interface ---------------------------------------------------------------------------


def _help_blocks(text: str) -> dict[str, str]:
    """``--help`` text -> {option: its whole entry on one line}."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = line
        elif current and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return {option: " ".join(entry.split()) for option, entry in blocks.items()}


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["sample"]])
def test_help_gives_every_option_a_line_and_its_default(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    blocks = _help_blocks(capsys.readouterr().out)
    parser = build_parser()
    if command:
        parser = parser._subparsers._group_actions[0].choices[command[0]]
    for action in parser._actions:
        if not action.option_strings:
            continue
        entry = blocks[action.option_strings[0]]
        assert action.help and action.help.split()[0] in entry, entry  # a line of its own
        if action.nargs != 0 and not action.required:  # takes a value: its default is shown
            assert "(default: " in entry, entry
    if command == ["train"]:
        for option in ("--channels", "--image-size", "--levels"):
            assert "fashion_mnist_4" in blocks[option]


def test_version_is_the_installed_packages(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"pixelrnn {importlib.metadata.version('pixelrnn_utils')}\n"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--multiscale", "3"], "--multiscale must be a power of 2"),
        (["--classes", "1"], "--classes must be at least 2"),
        (["--classes", "2", "--multiscale", "2"], "--classes and --multiscale"),
    ],
)
def test_messages_name_the_options_typed(options, named, small_folder, tmp_path, capsys):
    err = _fails(capsys, *_train(small_folder, tmp_path / "run", *options))
    assert named in err and "upsample" not in err and "classes=" not in err


def test_ctrl_c_message_names_the_option(small_folder, tmp_path, capsys, monkeypatch):
    from pixelrnn_utils import train as train_module

    real_step = train_module.train_step

    def step_then_ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", step_then_ctrl_c)
    assert main(_train(small_folder, tmp_path / "run")) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("interrupted: ") and "--resume" in err[-1]
    assert "resume=True" not in err[-1]
