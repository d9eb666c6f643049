"""Polyak averaging (``--ema``): the average's arithmetic, resumed exactly, used by evaluate and
sample, and never dropped by a resume that forgets it."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_run_config
from pixelrnn_utils.averaging import PolyakAverage
from pixelrnn_utils.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from pixelrnn_utils.cli import main
from pixelrnn_utils.model import build_model
from pixelrnn_utils.train import train


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_moves_one_minus_decay_of_the_way_each_step():
    torch.manual_seed(0)
    model = build_model("pixelcnn", 1, hidden=4, layers=1)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    average = PolyakAverage(model, 0.75)
    expected = dict(start)
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update()
        for name, p in model.named_parameters():
            expected[name] = 0.75 * expected[name] + 0.25 * p.detach()
    for name, p in average.model.named_parameters():
        torch.testing.assert_close(p, expected[name])
        assert not torch.equal(p, dict(model.named_parameters())[name])
    average.restart()
    assert _same(dict(average.model.named_parameters()), dict(model.named_parameters()))


@pytest.mark.parametrize("decay", [1.0, -0.1, "0.9", True])
def test_a_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match=r"--ema DECAY must be a number in \[0, 1\)"):
        PolyakAverage(build_model("pixelcnn", 1, hidden=4, layers=1), decay)


def test_resumed_average_equals_uninterrupted_and_is_what_load_checkpoint_gives(
    small_folder, tmp_path
):
    full, parts = tmp_path / "full", tmp_path / "parts"
    train(tiny_run_config(small_folder, full, epochs=2, ema=0.9))
    train(tiny_run_config(small_folder, parts, epochs=1, ema=0.9))
    train(tiny_run_config(small_folder, parts, epochs=2, ema=0.9, resume=True))
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(parts / "last.pt")
    assert a["ema"]["decay"] == 0.9
    assert _same(a["ema"]["weights"], b["ema"]["weights"]) and _same(a["model"], b["model"])
    averaged, info = load_checkpoint(full / "last.pt")
    trained, info_trained = load_checkpoint(full / "last.pt", averaged=False)
    assert (info["weights"], info_trained["weights"]) == ("averaged", "trained")
    assert _same(dict(averaged.named_parameters()), a["ema"]["weights"])
    assert _same(trained.state_dict(), a["model"])
    assert not _same(averaged.state_dict(), trained.state_dict())
    rows = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    # both sets of weights validated: the average's figure is the one the run is judged by
    assert all(
        r["ema"] == 0.9 and r["val_bits_per_dim"] != r["val_bits_per_dim_trained"] for r in rows
    )


def test_a_resume_that_forgets_ema_is_refused_before_it_drops_the_average(small_folder, tmp_path):
    out = tmp_path / "run"
    train(tiny_run_config(small_folder, out, epochs=1, ema=0.9))
    before = (out / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match=r"without Polyak averaging.*--ema 0.9"):
        train(tiny_run_config(small_folder, out, epochs=2, resume=True))
    assert (out / "last.pt").read_bytes() == before


def test_cli_resume_takes_ema_from_the_run(small_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PIXELRNN_DATA", raising=False)
    out = tmp_path / "run"
    argv = ["train", "--data", str(small_folder), "--hidden", "4", "--layers", "1"]
    argv += ["--image-size", "8", "--batch-size", "4", "--precision", "fp32", "--out", str(out)]
    assert main([*argv, "--epochs", "1", "--ema", "0.5"]) == 0
    assert main([*argv, "--epochs", "2", "--resume"]) == 0
    assert "ema=0.5" in capsys.readouterr().err
    assert read_checkpoint(out / "last.pt")["ema"]["decay"] == 0.5
    # evaluate scores the averaged weights, and says so
    assert main(["evaluate", "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    epoch = read_checkpoint(out / "best.pt")["epoch"]
    logged = json.loads((out / "metrics.jsonl").read_text().splitlines()[epoch - 1])
    assert result["weights"] == "averaged"
    assert result["bits_per_dim"] == pytest.approx(logged["val_bits_per_dim"], abs=1e-4)
    assert result["bits_per_dim"] != pytest.approx(logged["val_bits_per_dim_trained"], abs=1e-6)


def test_adding_ema_on_resume_starts_the_average_at_the_weights(small_folder, tmp_path):
    out = tmp_path / "run"
    train(tiny_run_config(small_folder, out, epochs=1))
    weights = read_checkpoint(out / "last.pt")["model"]
    with pytest.warns(UserWarning, match="trained without --ema: the average starts now"):
        train(tiny_run_config(small_folder, out, epochs=2, resume=True, ema=0.0))
    state = read_checkpoint(out / "last.pt")
    # decay 0: the average is the last step's weights, so it has moved away from epoch 1's
    assert _same(
        state["ema"]["weights"],
        {k: v for k, v in state["model"].items() if k in state["ema"]["weights"]},
    )
    assert not _same(state["ema"]["weights"], {k: weights[k] for k in state["ema"]["weights"]})
