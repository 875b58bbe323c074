"""On-disk format of a similarity log: a folder of one-window chunks and a JSON index.

Layout (``run_dir/gradvac_similarity/``)::

    meta.json            index, rewritten atomically (temp file + os.replace):
                           format, version, task_names [K], group_names [L], window (base length),
                           window_length (current length, doubles on each merge), max_windows,
                           metadata (free-form run metadata), next_chunk,
                           chunks: ordered list of {file, step_first, step_last}
    w00000000.npz ...    one window each (np.savez_compressed), written atomically:
                           step_first, step_last, num_steps   int64 scalars
                           cos_mean, coef_abs_mean            float32 [L, K, K]  (NaN = no data)
                           cos_count, fire_count              int64   [L, K, K]

Only chunks named in meta.json belong to the log; a file left by an interrupted write is ignored by
readers and removed by the next writer. Means are stored as float32 (cosines need no more); merging
is done in float64 from the counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradvac_ds.analysis.log.window import Window
from gradvac_ds.files import atomic_write

LOG_DIRNAME = "gradvac_similarity"
META_NAME = "meta.json"
FORMAT_NAME = "gradvac_similarity"
FORMAT_VERSION = 1
_ARRAY_FIELDS = ("cos_mean", "cos_count", "fire_count", "coef_abs_mean")
_SCALAR_FIELDS = ("step_first", "step_last", "num_steps")


@dataclass(frozen=True)
class ChunkEntry:
    """One chunk listed in meta.json: its file name and the steps its window covers."""

    file: str
    step_first: int
    step_last: int


@dataclass
class LogMeta:
    """Contents of meta.json (see the module docstring)."""

    task_names: list[str]
    group_names: list[str]
    window: int
    window_length: int
    max_windows: int
    metadata: dict[str, Any] = field(default_factory=dict)
    chunks: list[ChunkEntry] = field(default_factory=list)
    next_chunk: int = 0


def log_dir(run_dir: str | Path) -> Path:
    """The log folder of a run: ``run_dir/gradvac_similarity``, or run_dir itself if it is one."""
    run_dir = Path(run_dir)
    return run_dir if (run_dir / META_NAME).is_file() else run_dir / LOG_DIRNAME


def write_meta(directory: Path, meta: LogMeta) -> None:
    """Atomically (re)write meta.json."""
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **asdict(meta)}
    text = json.dumps(payload, indent=1).encode()
    atomic_write(directory / META_NAME, lambda handle: handle.write(text))


def _require(payload: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    if key not in payload or not isinstance(payload[key], kind):
        raise ValueError(f"{path}: field '{key}' is missing or not a {kind.__name__}")
    return payload[key]


def _chunk_entry(entry: Any, path: Path) -> ChunkEntry:
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: field 'chunks' must hold objects, got {entry!r}")
    return ChunkEntry(
        file=str(_require(entry, "file", str, path)),
        step_first=_require(entry, "step_first", int, path),
        step_last=_require(entry, "step_last", int, path),
    )


def read_meta(directory: Path) -> LogMeta:
    """Read and validate meta.json; ValueError names the file and the bad field."""
    path = directory / META_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no similarity log: {path} does not exist")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: field 'format' must be '{FORMAT_NAME}'")
    if payload.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: field 'version' is {payload.get('version')!r}, this reader understands {FORMAT_VERSION}"
        )
    return LogMeta(
        task_names=[str(name) for name in _require(payload, "task_names", list, path)],
        group_names=[str(name) for name in _require(payload, "group_names", list, path)],
        window=_require(payload, "window", int, path),
        window_length=_require(payload, "window_length", int, path),
        max_windows=_require(payload, "max_windows", int, path),
        metadata=_require(payload, "metadata", dict, path),
        chunks=[_chunk_entry(entry, path) for entry in _require(payload, "chunks", list, path)],
        next_chunk=_require(payload, "next_chunk", int, path),
    )


def chunk_name(index: int) -> str:
    """File name of chunk number ``index``."""
    return f"w{index:08d}.npz"


def write_window(path: Path, window: Window) -> None:
    """Atomically write one window chunk."""
    arrays = {
        "step_first": np.int64(window.step_first),
        "step_last": np.int64(window.step_last),
        "num_steps": np.int64(window.num_steps),
        "cos_mean": window.cos_mean.astype(np.float32),
        "cos_count": window.cos_count.astype(np.int64),
        "fire_count": window.fire_count.astype(np.int64),
        "coef_abs_mean": window.coef_abs_mean.astype(np.float32),
    }
    atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))


def read_window(path: Path, shape: tuple[int, int, int]) -> Window:
    """Read one window chunk and check its arrays have ``shape`` = (L, K, K)."""
    if not path.is_file():
        raise FileNotFoundError(f"similarity log chunk {path} is listed in {META_NAME} but missing")
    with np.load(path) as data:
        for name in _SCALAR_FIELDS + _ARRAY_FIELDS:
            if name not in data.files:
                raise ValueError(f"{path}: field '{name}' is missing")
        for name in _ARRAY_FIELDS:
            if data[name].shape != shape:
                raise ValueError(
                    f"{path}: field '{name}' has shape {list(data[name].shape)}, "
                    f"expected {list(shape)} from {META_NAME}"
                )
        return Window(
            step_first=int(data["step_first"]),
            step_last=int(data["step_last"]),
            num_steps=int(data["num_steps"]),
            cos_mean=data["cos_mean"].astype(np.float64),
            cos_count=data["cos_count"].astype(np.int64),
            fire_count=data["fire_count"].astype(np.int64),
            coef_abs_mean=data["coef_abs_mean"].astype(np.float64),
        )
