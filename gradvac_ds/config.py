"""GradVacConfig: the ``"gradvac"`` section of a DeepSpeed JSON config, validated.

Example section::

    "gradvac": {
        "mode": "gradvac",            # gradvac | pcgrad | sum
        "beta": 0.01,                 # EMA rate of the target similarities, in [0, 1]
        "granularity": "layer",       # model | enc_dec | layer | matrix
        "tasks": ["de-en", "fr-en"],  # or "discover": tasks are registered as they first appear
        "seed": 0,                    # seeds the per-step task visiting orders (same on every rank)
        "buffer_dtype": "fp32",       # fp32 | bf16: dtype of the per-task gradient buffers
        "log_interval": 10,           # steps between monitor/statistics writes; 0 disables
        "consistency_check_interval": 100  # steps between cross-rank agreement checks; 0 disables
    }

Validation happens in :meth:`GradVacConfig.from_dict`, before any process group exists, and every
error names the field and its allowed values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from gradvac_ds.algorithm import Mode
from gradvac_ds.grouping import Granularity

DISCOVER = "discover"
BUFFER_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


class ConfigError(ValueError):
    """A field of the gradvac configuration is missing, unknown or out of range."""


def dataclass_from_section(cls: type, section: Any, name: str) -> Any:
    """Build dataclass ``cls`` from a config mapping called ``name``; unknown keys are an error
    that lists the allowed ones."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{name} must be a mapping, got {type(section).__name__}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {name}; allowed fields are {allowed}")
    return cls(**section)


def _choice(field: str, value: Any, allowed: list[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"gradvac.{field} = {value!r} is not allowed; choose one of {allowed}")
    return value


def _nonnegative_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"gradvac.{field} = {value!r} must be an integer >= 0")
    return value


@dataclass(frozen=True)
class GradVacConfig:
    """Validated GradVac settings (defaults: the paper's beta = 1e-2, per-layer groups)."""

    mode: str = Mode.GRADVAC.value
    beta: float = 1e-2
    granularity: str = Granularity.LAYER.value
    tasks: tuple[str, ...] | str = DISCOVER
    seed: int = 0
    buffer_dtype: str = "fp32"
    log_interval: int = 10
    consistency_check_interval: int = 100

    def __post_init__(self) -> None:
        _choice("mode", self.mode, [m.value for m in Mode])
        _choice("granularity", self.granularity, [g.value for g in Granularity])
        _choice("buffer_dtype", self.buffer_dtype, list(BUFFER_DTYPES))
        beta = self.beta
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0.0 <= float(beta) <= 1.0:
            raise ConfigError(f"gradvac.beta = {beta!r} must be a number in [0, 1]")
        object.__setattr__(self, "beta", float(beta))
        _nonnegative_int("seed", self.seed)
        _nonnegative_int("log_interval", self.log_interval)
        _nonnegative_int("consistency_check_interval", self.consistency_check_interval)
        tasks = self.tasks
        if isinstance(tasks, str):
            if tasks != DISCOVER:
                raise ConfigError(f"gradvac.tasks = {tasks!r}: give a list of task names or {DISCOVER!r}")
        else:
            tasks = tuple(tasks)
            if not tasks or not all(isinstance(t, str) and t for t in tasks):
                raise ConfigError(f"gradvac.tasks = {list(tasks)!r} must be a non-empty list of names")
            if len(set(tasks)) != len(tasks):
                raise ConfigError(f"gradvac.tasks = {list(tasks)!r} holds duplicate names")
            object.__setattr__(self, "tasks", tasks)

    @property
    def buffer_torch_dtype(self) -> torch.dtype:
        return BUFFER_DTYPES[self.buffer_dtype]

    @classmethod
    def from_dict(cls, section: dict[str, Any]) -> GradVacConfig:
        """Build from the ``"gradvac"`` section; unknown keys are an error."""
        return dataclass_from_section(cls, section, "gradvac")

    @classmethod
    def from_deepspeed_config(cls, ds_config: dict[str, Any] | str | Path) -> GradVacConfig:
        """Read the ``"gradvac"`` section of a DeepSpeed config (a dict or a JSON file path)."""
        if not isinstance(ds_config, dict):
            ds_config = json.loads(Path(ds_config).read_text())
        if "gradvac" not in ds_config:
            raise ConfigError('the DeepSpeed config has no "gradvac" section')
        return cls.from_dict(ds_config["gradvac"])

    def to_dict(self) -> dict[str, Any]:
        section = asdict(self)
        if isinstance(self.tasks, tuple):
            section["tasks"] = list(self.tasks)
        return section
