"""The training-curve plot draws what the metrics log holds, and the untrained start at epoch 0."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pixelrnn_utils.viz import plot_training_curves  # noqa: E402

ROWS = [
    {"epoch": 1, "train_bits_per_dim": 5.0, "val_bits_per_dim": 4.5},
    {"epoch": 2, "train_bits_per_dim": 4.4, "val_bits_per_dim": 4.2},
]


def _lines(ax):
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}


def test_curves_without_a_start_begin_at_epoch_one():
    ax = plot_training_curves(ROWS)
    lines = _lines(ax)
    assert lines["validation (end of epoch)"] == ([1, 2], [4.5, 4.2])
    assert lines["train (mean over the epoch)"] == ([1, 2], [5.0, 4.4])
    plt.close("all")


def test_start_is_the_validation_point_at_epoch_zero():
    ax = plot_training_curves(ROWS, start=8.01)
    lines = _lines(ax)
    assert lines["validation (end of epoch)"] == ([0, 1, 2], [8.01, 4.5, 4.2])
    assert lines["train (mean over the epoch)"][0] == [1, 2]  # no train value before training
    assert 0 in list(ax.get_xticks())
    plt.close("all")


def test_empty_log_is_a_clear_error():
    with pytest.raises(ValueError, match="no metrics rows"):
        plot_training_curves([])


def test_row_labels_sit_beside_their_rows():
    import torch

    from pixelrnn_utils.viz import show_images

    images = torch.zeros(6, 1, 4, 4, dtype=torch.long)
    images[3:] = 1  # the second row is white
    ax = show_images(images, nrow=3, levels=2, row_labels=["black", "white"])
    grid = ax.images[0].get_array()
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    assert list(texts) == ["black", "white"]
    for name, value in (("black", 0), ("white", 255)):
        x, y = texts[name]
        assert x < 0  # left of the grid
        assert grid[int(y), 2:-2].min() == value  # the row at that height (tile interiors)
    with pytest.raises(ValueError, match="3 row labels for a grid of 2 rows"):
        show_images(images, nrow=3, row_labels=["a", "b", "c"])
    plt.close("all")


@pytest.mark.parametrize("train, val", [(3.535, 3.524), (3.50, 3.52), (3.52, 3.52)])
def test_last_values_stay_readable_when_the_curves_end_together(train, val):
    """The two end labels (notebook 05's shipped run ends at 3.535 and 3.524) are drawn one above,
    one below their points, the higher value's above, never on top of each other."""
    rows = [*ROWS, {"epoch": 3, "train_bits_per_dim": train, "val_bits_per_dim": val}]
    ax = plot_training_curves(rows)
    fig = ax.figure
    fig.canvas.draw()
    train_box, val_box = (t.get_window_extent() for t in ax.texts)  # drawn in this order
    assert [t.get_text() for t in ax.texts] == [f"{train:.3f}", f"{val:.3f}"]
    assert not train_box.overlaps(val_box)
    high, low = (val_box, train_box) if val > train else (train_box, val_box)
    assert high.y0 >= low.y1  # the higher value's label is the upper one
    plt.close("all")
