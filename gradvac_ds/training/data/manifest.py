"""The manifest of a prepared data directory: what ``gradvac-prepare`` wrote, and whether a run may use it.

``manifest.json`` (format ``gradvac_ds.prepared``, :data:`FORMAT_VERSION`)::

    {"format": "gradvac_ds.prepared", "format_version": 1, "kind": "translation" | "lm",
     "data": {...},             # the data config's PREPARE_FIELDS (gradvac_ds.training.data.config)
     "vocabulary": {"file": "spm.model", "size": V, "languages": [...], "sha256": ...},
     "tasks": [...],            # global task order: "src-tgt" (translation) or "xx" (lm)
     "pairs": {task: [src, tgt]},                     # translation only
     "datasets": {task: {split: {"prefix": ..., "documents": n, "tokens": t, "bin_bytes": b,
                                 "idx_bytes": b}}},
     "filters": {task: {split: {"kept": n, "removed": {reason: n}}}},
     "skipped_files": [...], "families": {...} | null,
     "content_sha256": ...}     # over the vocabulary and every .bin/.idx, in sorted name order

A run checks the version, that its own data config equals ``data`` field by field, and (through
:func:`~gradvac_ds.training.data.indexed.open_indexed`) every file against the counts; each error
names the file and what differs, before any process group starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gradvac_ds.files import atomic_write_text
from gradvac_ds.training.data.config import PREPARE_FIELDS, DataConfig, prepare_settings
from gradvac_ds.training.data.errors import DataError

FORMAT = "gradvac_ds.prepared"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VOCABULARY_FILE = "spm.model"


def content_hash(directory: Path, names: Iterable[str]) -> str:
    """SHA-256 over the named files of ``directory`` (name, then bytes), in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0")
        with (directory / name).open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` into ``directory`` (through a temporary name)."""
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def read_manifest(directory: Path) -> dict[str, Any]:
    """The parsed manifest of ``directory``, its format and version checked.

    Raises:
        DataError: missing directory or manifest, invalid JSON, another format or version.
    """
    path = directory / MANIFEST
    if not directory.is_dir():
        raise DataError(
            f"{directory}: no prepared data directory; run gradvac-prepare with this run config first"
        )
    if not path.is_file():
        raise DataError(
            f"{path}: missing; {directory} is not a complete prepared directory (re-run gradvac-prepare)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); re-run gradvac-prepare") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a gradvac_ds prepared-data manifest (format {FORMAT!r} expected)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DataError(
            f"{path}: prepared with format version {version!r}; this gradvac_ds reads version "
            f"{FORMAT_VERSION}: re-run gradvac-prepare to rebuild {directory}"
        )
    return manifest


def check_settings(manifest: dict[str, Any], config: DataConfig, path: Path) -> None:
    """Raise a DataError naming each ``data.*`` field where the run config and the manifest differ."""
    mine = prepare_settings(config)
    differing = [
        f"data.{name}: run config {mine[name]!r}, prepared {manifest['data'].get(name)!r}"
        for name in PREPARE_FIELDS
        if manifest["data"].get(name) != mine[name]
    ]
    if differing:
        raise DataError(
            f"{path}: prepared for another data config; re-run gradvac-prepare or point data.prepared "
            "elsewhere:\n  " + "\n  ".join(differing)
        )
