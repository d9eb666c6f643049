"""Tests for pixelrnn_utils.data: exact quantisation, modes, sizes, bad input, splits, loaders."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn_utils.data import (
    CorruptImageWarning,
    load_dataset,
    make_loader,
    project_root,
    requantize,
    split_dataset,
)
from pixelrnn_utils.viz import image_grid

SHARED_CIFAR = project_root().parent / "shared" / "data" / "cifar10-train"


def write_folder(root: Path, images: dict[str, Image.Image]) -> Path:
    """Write ``{"class/name.png": image}`` under ``root``; returns ``root``."""
    for name, image in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return root


def only_image(root: Path, **kwargs) -> torch.Tensor:
    dataset = load_dataset(root, **kwargs)
    assert len(dataset) == 1
    image, label = dataset[0]
    assert image.dtype == torch.long and label == 0
    return image


def random_rgb(seed: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


# --- exact quantisation ------------------------------------------------------------------------


def test_png_round_trip_is_exact(tmp_path):
    pixels = random_rgb(0)
    write_folder(tmp_path, {"cls/a.png": Image.fromarray(pixels)})
    image = only_image(tmp_path)
    assert image.shape == (3, 32, 32)
    assert torch.equal(image, torch.from_numpy(pixels).permute(2, 0, 1).long())


def test_attributes_and_labels(tmp_path):
    write_folder(
        tmp_path,
        {f"{c}/{i}.png": Image.fromarray(random_rgb(i)) for c in ("b", "a") for i in range(3)},
    )
    dataset = load_dataset(tmp_path)
    assert dataset.classes == ["a", "b"]
    assert [f.parent.name for f in dataset.files] == ["a"] * 3 + ["b"] * 3
    assert dataset.images.dtype == torch.uint8 and dataset.images.shape == (6, 3, 32, 32)
    assert [dataset[i][1] for i in range(6)] == [0, 0, 0, 1, 1, 1]


def test_flat_folder_gets_label_zero(tmp_path):
    write_folder(tmp_path, {f"{i}.png": Image.fromarray(random_rgb(i)) for i in range(3)})
    dataset = load_dataset(tmp_path)
    assert len(dataset) == 3 and {dataset[i][1] for i in range(3)} == {0}


def test_relative_path_resolves_against_cwd(tmp_path, monkeypatch):
    write_folder(tmp_path / "imgs", {"c/a.png": Image.fromarray(random_rgb(1))})
    monkeypatch.chdir(tmp_path)
    assert len(load_dataset("imgs")) == 1


# --- modes -------------------------------------------------------------------------------------


def test_grey_in_rgb_run_replicates(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8)
    write_folder(tmp_path, {"c/g.png": Image.fromarray(grey)})
    image = only_image(tmp_path)
    for c in range(3):
        assert torch.equal(image[c], torch.from_numpy(grey).long())
    assert only_image(tmp_path, channels=1).shape == (1, 32, 32)


def test_rgb_to_grey_uses_pil_convert(tmp_path):
    pil = Image.fromarray(random_rgb(2))
    write_folder(tmp_path, {"c/a.png": pil})
    image = only_image(tmp_path, channels=1)
    assert torch.equal(image[0], torch.from_numpy(np.array(pil.convert("L"))).long())


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_composited_on_white(tmp_path, mode):
    bands = len(mode)
    array = np.zeros((32, 32, bands), dtype=np.uint8)
    array[..., :-1] = 40  # dark colour
    array[:16, :, -1] = 255  # top half opaque, bottom half transparent
    write_folder(tmp_path, {"c/a.png": Image.fromarray(array)})
    image = only_image(tmp_path)
    assert (image[:, :16] == 40).all()
    assert (image[:, 16:] == 255).all()


def test_palette_image(tmp_path):
    pixels = random_rgb(3)
    palette = Image.fromarray(pixels).quantize(colors=16)
    write_folder(tmp_path, {"c/p.png": palette})
    image = only_image(tmp_path)
    expected = np.asarray(palette.convert("RGB")).transpose(2, 0, 1)
    assert torch.equal(image, torch.from_numpy(expected.copy()).long())


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (32, 32), (0, 0, 0, 0))  # no ink: white
    write_folder(tmp_path, {"c/k.jpg": cmyk})
    image = only_image(tmp_path)
    assert image.shape == (3, 32, 32)
    assert (image >= 250).all()


def test_16_bit_grey_scales_to_8_bit(tmp_path):
    values = np.zeros((32, 32), dtype=np.uint16)
    values[0, 0] = 65535
    values[0, 1] = 257 * 100
    write_folder(tmp_path, {"c/i16.png": Image.fromarray(values)})
    with Image.open(tmp_path / "c" / "i16.png") as check:
        assert check.mode.startswith("I")
    image = only_image(tmp_path)
    assert image.shape == (3, 32, 32)
    assert image[:, 0, 0].tolist() == [255] * 3
    assert image[:, 0, 1].tolist() == [100] * 3
    assert image[:, 1:].max() == 0


def test_bilevel_image(tmp_path):
    array = np.zeros((32, 32), dtype=bool)
    array[:, 16:] = True
    write_folder(tmp_path, {"c/b.png": Image.fromarray(array)})
    image = only_image(tmp_path)
    assert (image[:, :, :16] == 0).all() and (image[:, :, 16:] == 255).all()


# --- sizes -------------------------------------------------------------------------------------


def test_resize_shorter_side_then_centre_crop(tmp_path):
    write_folder(tmp_path, {"c/a.png": Image.new("RGB", (100, 80), (10, 200, 30))})
    image = only_image(tmp_path)
    assert image.shape == (3, 32, 32)
    assert image[0].unique().tolist() == [10]
    assert image[1].unique().tolist() == [200]
    assert image[2].unique().tolist() == [30]


def test_centre_crop_keeps_the_middle(tmp_path):
    # 96 x 32: left third red, middle green, right third blue -> centre crop is green
    array = np.zeros((32, 96, 3), dtype=np.uint8)
    array[:, :32, 0] = 255
    array[:, 32:64, 1] = 255
    array[:, 64:, 2] = 255
    write_folder(tmp_path, {"c/a.png": Image.fromarray(array)})
    image = only_image(tmp_path)
    assert torch.equal(image, torch.from_numpy(array[:, 32:64].transpose(2, 0, 1).copy()).long())


def test_native_size_and_mismatch(tmp_path):
    write_folder(tmp_path / "same", {f"c/{i}.png": Image.new("RGB", (20, 12)) for i in range(2)})
    assert load_dataset(tmp_path / "same", image_size=None)[0][0].shape == (3, 12, 20)
    write_folder(
        tmp_path / "mixed",
        {"c/a.png": Image.new("RGB", (20, 12)), "c/b.png": Image.new("RGB", (10, 10))},
    )
    with pytest.raises(ValueError, match="different sizes"):
        load_dataset(tmp_path / "mixed", image_size=None)


# --- bad input ---------------------------------------------------------------------------------


def test_corrupt_files_are_skipped_with_a_warning(tmp_path):
    write_folder(tmp_path, {f"c/good{i}.png": Image.fromarray(random_rgb(i)) for i in range(2)})
    (tmp_path / "c" / "x.png").write_bytes(b"this is not an image at all")
    Image.fromarray(random_rgb(9)).save(tmp_path / "c" / "t.jpg", quality=95)
    data = (tmp_path / "c" / "t.jpg").read_bytes()
    (tmp_path / "c" / "t.jpg").write_bytes(data[: len(data) // 2])

    with pytest.warns(CorruptImageWarning) as record:
        dataset = load_dataset(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert str(tmp_path / "c" / "x.png") in messages
    assert str(tmp_path / "c" / "t.jpg") in messages
    assert issubclass(CorruptImageWarning, UserWarning)
    assert [f.name for f in dataset.files] == ["good0.png", "good1.png"]
    assert torch.equal(dataset[1][0], torch.from_numpy(random_rgb(1)).permute(2, 0, 1).long())


def test_empty_folder_explains_layout(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"root/<class>/<image>") as info:
        load_dataset(tmp_path)
    assert ".png" in str(info.value) and ".jpg" in str(info.value)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="PIXELRNN_DATA") as info:
        load_dataset(tmp_path / "nope")
    assert "does not exist" in str(info.value)
    for name in ("cifar10", "mnist", "fashion_mnist", "binarized_mnist", "fashion_mnist_4"):
        assert f"{name}," in str(info.value) or f"{name} or" in str(info.value), name


def test_download_failure_explains_pixelrnn_data(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(RuntimeError, match="PIXELRNN_DATA") as info:
        load_dataset("cifar10", root=tmp_path)
    assert "export PIXELRNN_DATA=" in str(info.value)
    assert isinstance(info.value.__cause__, OSError)


def test_torchvision_wrapper_converts_items(tmp_path, monkeypatch):
    import torchvision.datasets

    class FakeMNIST:
        classes = [str(i) for i in range(10)]

        def __init__(self, root, train=True, download=True):
            self.pixels = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)

        def __len__(self):
            return 5

        def __getitem__(self, i):
            return Image.fromarray(self.pixels[i]), i

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    dataset = load_dataset("mnist", root=tmp_path)
    image, label = dataset[3]
    assert image.dtype == torch.long and image.shape == (3, 32, 32) and label == 3
    assert torch.equal(image[0], image[2])
    native = load_dataset("mnist", root=tmp_path, image_size=None, channels=1)
    assert torch.equal(native[2][0][0], torch.from_numpy(FakeMNIST(None).pixels[2]).long())


# --- limit, split, loader, requantize ---------------------------------------------------------


def test_limit_spreads_over_classes(tmp_path):
    write_folder(
        tmp_path,
        {f"{c}/{i}.png": Image.new("RGB", (32, 32), (i, 0, 0)) for c in "abcd" for i in range(5)},
    )
    dataset = load_dataset(tmp_path, limit=8)
    assert len(dataset) == 8
    assert sorted({dataset[i][1] for i in range(8)}) == [0, 1, 2, 3]
    assert dataset.files == load_dataset(tmp_path, limit=8).files
    assert len(load_dataset(tmp_path, limit=100)) == 20


def test_split_is_deterministic_and_disjoint():
    data = torch.utils.data.TensorDataset(torch.arange(100))
    train, val = split_dataset(data, val_fraction=0.2, seed=3)
    torch.manual_seed(123)  # the global RNG must not matter
    train2, val2 = split_dataset(data, val_fraction=0.2, seed=3)
    assert train.indices == train2.indices and val.indices == val2.indices
    assert len(val) == 20 and len(train) == 80
    assert not set(train.indices) & set(val.indices)
    assert set(train.indices) | set(val.indices) == set(range(100))
    _, val3 = split_dataset(data, val_fraction=0.2, seed=4)
    assert val3.indices != val.indices


def test_split_keeps_one_image_each_side():
    for n in (2, 3):
        train, val = split_dataset(torch.utils.data.TensorDataset(torch.arange(n)), 0.01)
        assert len(train) >= 1 and len(val) >= 1 and len(train) + len(val) == n


def test_make_loader_batches(tmp_path):
    write_folder(tmp_path, {f"c/{i}.png": Image.fromarray(random_rgb(i)) for i in range(10)})
    dataset = load_dataset(tmp_path)
    loader = make_loader(dataset, batch_size=4, seed=0)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]
    assert batches[0][0].dtype == torch.long and batches[0][1].shape == (4,)
    again = list(make_loader(dataset, batch_size=4, seed=0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    assert len(list(make_loader(dataset, batch_size=4, drop_last=True))) == 2


def test_requantize():
    x = torch.arange(256)
    assert torch.equal(requantize(x, 256), x)
    assert torch.equal(requantize(x, 2), (x >= 128).long() * 255)
    four = requantize(x, 4)
    assert four.unique().tolist() == [0, 85, 170, 255]
    assert four.dtype == torch.long
    with pytest.raises(ValueError):
        requantize(x, 1)


def test_image_grid_shapes():
    grid = image_grid(torch.randint(0, 256, (5, 1, 8, 8)), nrow=4, padding=2)
    assert grid.dtype == np.uint8 and grid.shape == (2 + 2 * 10, 2 + 4 * 10, 3)


# --- the shared CIFAR-10 JPEG copy -----------------------------------------------------------


@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="no shared CIFAR-10 copy")
def test_shared_cifar10_copy():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptImageWarning)
        dataset = load_dataset(SHARED_CIFAR, limit=200)
    assert len(dataset) == 200 and len(dataset.classes) == 10
    assert sorted({dataset[i][1] for i in range(200)}) == list(range(10))
    image, _ = dataset[17]
    assert image.dtype == torch.long and image.shape == (3, 32, 32)
    assert 0 <= int(dataset.images.min()) and int(dataset.images.max()) <= 255


# --- the decoded-data cache --------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder, and caching of any decode (not only large ones)."""
    from pixelrnn_utils.datasets import cache as cache_module

    monkeypatch.setenv("PIXELRNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_module, "_CACHE_MIN_IMAGES", 1)
    return tmp_path / "cache"


def _count_decodes(monkeypatch) -> list[Path]:
    from pixelrnn_utils.datasets import folders  # where _load_image_folder looks _read_file up

    decoded: list[Path] = []
    real = folders._read_file

    def counting(path, *args):
        decoded.append(path)
        return real(path, *args)

    monkeypatch.setattr(folders, "_read_file", counting)
    return decoded


def _folder(root: Path, n: int = 6) -> Path:
    return write_folder(
        root, {f"c{i % 2}/{i}.png": Image.fromarray(random_rgb(i)) for i in range(n)}
    )


def test_second_load_comes_from_the_cache(tmp_path, cache, monkeypatch):
    folder = _folder(tmp_path / "imgs")
    first = load_dataset(folder)
    assert len(list(cache.glob("*.pt"))) == 1
    decoded = _count_decodes(monkeypatch)
    second = load_dataset(folder)
    assert decoded == []
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.files == second.files and first.classes == second.classes
    subset = load_dataset(folder, indices=[1, 4])  # a subset is served by the whole-folder cache
    assert decoded == [] and torch.equal(subset.images, first.images[[1, 4]])


def test_changed_folder_or_options_never_reuse_the_cache(tmp_path, cache, monkeypatch):
    folder = _folder(tmp_path / "imgs")
    before = load_dataset(folder)
    changed = random_rgb(99)
    Image.fromarray(changed).save(folder / "c1" / "3.png")  # same name, new pixels
    stat = (folder / "c1" / "3.png").stat()
    os.utime(folder / "c1" / "3.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = load_dataset(folder)
    k = after.files.index(folder / "c1" / "3.png")
    assert torch.equal(after[k][0], torch.from_numpy(changed).permute(2, 0, 1).long())
    assert not torch.equal(after.images, before.images)
    Image.fromarray(random_rgb(7)).save(folder / "c0" / "new.png")  # a file added
    assert len(load_dataset(folder)) == 7
    decoded = _count_decodes(monkeypatch)
    assert load_dataset(folder, image_size=16).images.shape[-1] == 16  # other options: decoded
    assert load_dataset(folder, channels=1).images.shape[1] == 1
    assert len(decoded) == 14


def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, cache, monkeypatch):
    from pixelrnn_utils.data import DataCacheWarning

    folder = _folder(tmp_path / "imgs")
    good = load_dataset(folder)
    (path,) = cache.glob("*.pt")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    decoded = _count_decodes(monkeypatch)
    with pytest.warns(DataCacheWarning, match="damaged"):
        rebuilt = load_dataset(folder)
    assert torch.equal(rebuilt.images, good.images) and len(decoded) == 6
    assert load_dataset(folder).images.shape == good.images.shape  # and the new cache works


def test_corrupt_files_are_reported_again_from_the_cache(tmp_path, cache):
    folder = _folder(tmp_path / "imgs", 3)
    (folder / "c0" / "bad.png").write_bytes(b"not an image")
    with pytest.warns(CorruptImageWarning):
        first = load_dataset(folder)
    with pytest.warns(CorruptImageWarning, match="bad.png"):
        second = load_dataset(folder)
    assert len(first) == len(second) == 3


def test_limit_and_indices_limit_decoding(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "imgs", 10)
    decoded = _count_decodes(monkeypatch)
    dataset = load_dataset(folder, indices=[7, 2, 2])
    assert dataset.indices == [2, 7] and len(decoded) == 2
    assert load_dataset(folder).files[7] == dataset.files[1]
    with pytest.raises(ValueError, match="indices must lie in"):
        load_dataset(folder, indices=[10])


def test_training_splits_decode_only_what_they_use(tmp_path, monkeypatch):
    from pixelrnn_utils.train import TrainConfig, load_splits

    folder = _folder(tmp_path / "imgs", 40)
    decoded = _count_decodes(monkeypatch)
    cfg = TrainConfig(data=str(folder), limit=5, val_limit=3, val_fraction=0.25)
    train_set, val_set = load_splits(cfg)
    assert len(train_set) == 5 and len(val_set) == 3 and len(decoded) == 8
    full_train, full_val = split_dataset(load_dataset(folder), 0.25, seed=0)
    assert [train_set[k][0].sum() for k in range(5)] == [full_train[k][0].sum() for k in range(5)]
    assert [val_set[k][0].sum() for k in range(3)] == [full_val[k][0].sum() for k in range(3)]


def test_shown_path_never_prints_this_machines_absolute_path(tmp_path, monkeypatch):
    from pixelrnn_utils import settings
    from pixelrnn_utils.settings import shown_path

    root = project_root()
    assert shown_path(root / "runs" / "x") == "runs/x"
    assert shown_path(root.parent / "shared" / "data") == "../shared/data"
    assert shown_path("cifar10") == "cifar10"
    monkeypatch.setenv("HOME", str(tmp_path))
    # a repository far from the temporary folder (a clone in /tmp has pytest's folders next to it)
    monkeypatch.setattr(settings, "project_root", lambda: Path("/nonexistent/repository"))
    assert shown_path(tmp_path / "images") == "~/images"
    assert shown_path("/nowhere/else/images") == "images"


def test_shown_source_names_a_folder_without_where_it_lies(tmp_path, monkeypatch):
    from pixelrnn_utils.settings import shown_source

    assert shown_source("cifar10") == "cifar10"
    assert shown_source("binarized_mnist") == "binarized_mnist"
    assert shown_source("../shared/data/cifar10-train") == "image folder 'cifar10-train'"
    assert shown_source(tmp_path / "my images") == "image folder 'my images'"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    # a folder, though it looks like a name
    assert shown_source("photos") == "image folder 'photos'"


def test_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    from pixelrnn_utils.data import DataCacheWarning
    from pixelrnn_utils.datasets import cache as cache_module

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PIXELRNN_CACHE", str(blocked))
    monkeypatch.setattr(cache_module, "_CACHE_MIN_IMAGES", 1)
    folder = _folder(tmp_path / "imgs", 3)
    with pytest.warns(DataCacheWarning, match="PIXELRNN_CACHE"):
        dataset = load_dataset(folder)
    assert len(dataset) == 3 and blocked.read_text().startswith("a file")
