"""The decoded-data cache: a large decode is done once, then read back from disk.

Decoding 50,000 JPEGs takes several seconds, so large decodes are **cached**: the uint8 arrays are
saved under :func:`cache_dir` (``$PIXELRNN_CACHE``, else ``~/.cache/pixelrnn_utils``), keyed by
everything that determines them -- every file's path, size and modification time (or the
torchvision dataset's files), ``image_size``, ``channels`` and which images were asked for. A
changed folder or changed options therefore never reuse a stale cache, and a cache file that cannot
be read is rebuilt with a :class:`DataCacheWarning`, never trusted. Pass ``indices`` (or ``limit``)
to decode only the images you need.

The folder and torchvision loaders (``datasets.folders``, ``datasets.torchvision_sources``) decode
through :func:`_cached_decode`; :func:`_fingerprint` is the part of the key that names the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["DataCacheWarning", "cache_dir"]


# Cache decodes of at least this many images (smaller ones take well under a second).
_CACHE_MIN_IMAGES = 1000
_CACHE_FORMAT = "pixelrnn_utils.decoded/1"


class DataCacheWarning(UserWarning):
    """A decoded-data cache file was unreadable or could not be written; nothing is lost."""


def cache_dir() -> Path:
    """Where decoded datasets are cached: ``$PIXELRNN_CACHE``, else ``~/.cache/pixelrnn_utils``."""
    if os.environ.get("PIXELRNN_CACHE"):
        return Path(os.environ["PIXELRNN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pixelrnn_utils"


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _read_cache(key: str) -> dict | None:
    """The cached decode for ``key``, or None. A damaged file is removed with a warning."""
    path = cache_dir() / f"{key[:40]}.pt"
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        images, labels = state["images"], state["labels"]
        ok = (
            state["format"] == _CACHE_FORMAT
            and state["key"] == key
            and images.dtype == torch.uint8
            and images.dim() == 4
            and len(labels) == len(images) == len(state["kept"])
        )
        if not ok:
            raise ValueError("its contents do not match what was asked for")
        return state
    except Exception as e:  # anything unreadable is rebuilt, never trusted
        warnings.warn(
            f"decoded-data cache {path} is damaged ({type(e).__name__}: {e}); decoding again",
            DataCacheWarning,
            stacklevel=4,
        )
        path.unlink(missing_ok=True)
        return None


def _write_cache(key: str, state: dict) -> None:
    """Write a cache file atomically; a cache that cannot be written only costs time."""
    folder = cache_dir()
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".decoded.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": _CACHE_FORMAT, "key": key, **state}, f)
        os.replace(tmp, folder / f"{key[:40]}.pt")
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(
            f"could not write the decoded-data cache in {folder} ({e}); set PIXELRNN_CACHE to a "
            "writable folder to make the next load fast",
            DataCacheWarning,
            stacklevel=4,
        )


def _cached_decode(
    key_parts: dict, keep: list[int], decode, skipped_warning
) -> tuple[torch.Tensor, list[int], list[int]]:
    """Decode ``keep`` with ``decode(keep) -> (images, labels, kept)``, through the cache.

    Returns ``(images uint8 (N, C, H, W), labels, kept source positions)``. A cache of the whole
    source is used for any subset of it. ``skipped_warning(i)`` re-issues the warning for a
    source position that was unreadable when the cache was built.
    """
    everything = _digest({**key_parts, "keep": "all"})
    wanted = _digest({**key_parts, "keep": keep})
    for key in (everything, wanted):
        state = _read_cache(key)
        if state is None:
            continue
        kept = state["kept"].tolist()
        position = {source: k for k, source in enumerate(kept)}
        missing = [i for i in keep if i not in position]
        for i in missing:
            skipped_warning(i)
        rows = [position[i] for i in keep if i in position]
        if not rows:
            raise ValueError("none of the requested images could be decoded")
        return state["images"][rows], state["labels"][rows].tolist(), [kept[r] for r in rows]
    images, labels, kept = decode(keep)
    if len(keep) >= _CACHE_MIN_IMAGES:
        key = everything if len(keep) == key_parts["n"] else wanted
        _write_cache(
            key, {"images": images, "labels": torch.tensor(labels), "kept": torch.tensor(kept)}
        )
    return images, labels, kept


def _fingerprint(files: list[Path], folder: Path) -> str:
    """Changes whenever a file is added, removed, renamed, rewritten or touched."""
    stats = []
    for f in files:
        st = f.stat()
        stats.append((str(f.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return _digest(stats)
