"""Run-config files: YAML with ``extends`` and dotted ``--set`` overrides, as plain mappings.

A run config may start with ``extends: other.yaml`` (a path relative to the file): the other file
is read first, recursively, and this file's values are merged into it, mappings key by key and
other values replacing. Overrides then set dotted keys (``training.steps=500``; values parsed as
YAML). :func:`load_config` does both; the run config (:class:`~gradvac_ds.training.run_config.
RunConfig.load`) and the data commands (``gradvac-prepare`` reads the ``data`` section alone) all
read files through it, so that every entry point sees the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gradvac_ds.errors import ConfigError


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: mappings recursively, other values replace."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_config(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A run-config YAML file with its ``extends`` chain resolved."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"run config {path} does not exist")
    if path in seen:
        raise ConfigError(f"extends: {path} extends itself through {[str(p) for p in seen]}")
    values = yaml.safe_load(path.read_text()) or {}
    base = values.pop("extends", None)
    if base is None:
        return values
    return _merged(read_config(path.parent / base, (*seen, path)), values)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``key.sub=value`` strings (``--set``) -> {"key.sub": parsed YAML value}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key.sub=value, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`read_config` of ``path`` with ``overrides`` (dotted key -> value) applied."""
    values = read_config(path)
    for dotted, value in (overrides or {}).items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values
