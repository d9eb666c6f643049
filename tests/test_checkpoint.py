"""Checkpoints: round trip, atomic writes, and refusing bad files with a clear message."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from pixelrnn_utils.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from pixelrnn_utils.model import build_model


def _model(arch: str = "row_lstm", hidden: int = 6):
    torch.manual_seed(0)
    return build_model(arch, 3, hidden=hidden, layers=1)


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = _model()
    opt = torch.optim.Adam(model.parameters())
    path = save_checkpoint(
        tmp_path / "run" / "last.pt", model, opt, epoch=3, metrics=[{"epoch": 3}]
    )
    loaded, info = load_checkpoint(path)
    x = torch.randint(0, 256, (2, 3, 5, 4))
    assert torch.equal(loaded(x), model.eval()(x))
    assert info["epoch"] == 3 and info["metrics"] == [{"epoch": 3}]
    assert info["config"] == model.config
    assert "optimizer" in info and not loaded.training
    # plain torch.load with weights_only=True reads it too
    assert torch.load(path, weights_only=True)["config"]["arch"] == "row_lstm"


def test_write_is_atomic_no_temporary_files_left(tmp_path):
    model = _model()
    for epoch in range(3):
        save_checkpoint(tmp_path / "last.pt", model, epoch=epoch)
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "pixelrnn_utils.checkpoint/1", "payload": _RunsCode(marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists(), "unpickling ran code"
    # a raw pickle (not a torch zip file) is refused too
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_file_says_so(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_weights_of_another_architecture_say_so(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _model("row_lstm"))
    state = torch.load(path, weights_only=True)
    state["model"] = _model("pixelcnn").state_dict()
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(path)


def test_weights_of_another_size_say_so(tmp_path):
    path = save_checkpoint(tmp_path / "a.pt", _model(hidden=6))
    state = torch.load(path, weights_only=True)
    state["model"] = _model(hidden=9).state_dict()
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="another architecture or size"):
        load_checkpoint(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pixelrnn_utils checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    # a text file and random bytes are not checkpoints; they run nothing, so no "refused" warning
    (tmp_path / "notes.md").write_text("# my notes\n")
    (tmp_path / "noise.pt").write_bytes(bytes(range(7, 107)))
    for name in ("notes.md", "noise.pt"):
        with pytest.raises(CheckpointError, match="is not a checkpoint") as info:
            load_checkpoint(tmp_path / name)
        assert "run code" not in str(info.value)


def test_export_weights_is_small_and_loads_as_the_same_model(tmp_path):
    from pixelrnn_utils.checkpoint import export_weights

    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=16, layers=2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randint(0, 256, (2, 3, 8, 8))).float().mean().backward()
    optimizer.step()
    full = save_checkpoint(
        tmp_path / "full.pt", model, optimizer, 3, [{"epoch": 3}], train={"lr": 1e-3}
    )
    small = export_weights(full, tmp_path / "small.pt")
    assert small.stat().st_size < 0.4 * full.stat().st_size  # no Adam moments, 16-bit weights
    state = torch.load(small, weights_only=True)
    assert state["optimizer"] is None
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())
    loaded, info = load_checkpoint(small)
    assert (
        info["epoch"] == 3 and info["metrics"] == [{"epoch": 3}] and info["train"] == {"lr": 1e-3}
    )
    x = torch.randint(0, 256, (2, 3, 8, 8))
    with torch.no_grad():
        reference, rounded = model.eval()(x), loaded(x)
    assert rounded.dtype == torch.float32
    assert torch.allclose(rounded, reference, atol=0.05)  # float16 rounding of the weights only
    assert not torch.equal(rounded, reference)
