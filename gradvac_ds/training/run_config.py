"""The run configuration of ``launch/train.py``: one YAML file with five sections.

::

    run_dir: runs/demo
    model:      {preset: tiny, kind: encdec, tensor_parallel: 1}
    data:       {...}                      # gradvac_ds.training.data.DataConfig (read by gradvac-prepare)
    training:   {steps: 300, lr: 2e-3, warmup_steps: 50, modes: [sum, pcgrad, gradvac], ...}
    evaluation: {beam_size: 1, max_length: 48, max_sentences: 200}
    deepspeed:  {...}                      # a DeepSpeed config with its "gradvac" section

A file may start with ``extends: <other.yaml>`` (a path relative to it): the other file is read
first and this file's keys are merged over it, section by section (mappings merge recursively,
anything else replaces). Everything is validated when the file is read, before any process group
starts; errors name the field and the allowed values. ``gradient_accumulation_steps`` is derived from
``data.batching.micro_batches_per_step`` and must not be set in the ``deepspeed`` section.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gradvac_ds.algorithm import Mode
from gradvac_ds.config import ConfigError, GradVacConfig, dataclass_from_section
from gradvac_ds.training.data import DataConfig

MODEL_KINDS = ("encdec", "decoder")


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``: mappings recursively, other values replace."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A run-config YAML file with its ``extends`` chain resolved."""
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"run config {path} does not exist")
    if path in seen:
        raise ConfigError(f"extends: {path} extends itself through {[str(p) for p in seen]}")
    values = yaml.safe_load(path.read_text()) or {}
    base = values.pop("extends", None)
    if base is None:
        return values
    return _merged(read_yaml(path.parent / base, (*seen, path)), values)


def _positive(name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind | int) or value <= 0:
        raise ConfigError(f"{name} = {value!r} must be a positive {kind.__name__}")


@dataclass(frozen=True)
class ModelSection:
    """Which architecture to build: a preset of ``models/`` (or a YAML path), its kind, TP size."""

    preset: str = "tiny"
    kind: str = "encdec"
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind = {self.kind!r} is not allowed; choose one of {list(MODEL_KINDS)}")
        _positive("model.tensor_parallel", self.tensor_parallel)


@dataclass(frozen=True)
class TrainingSection:
    """Optimisation: AdamW with linear warm-up to ``lr`` then inverse-square-root decay.

    ``dist_timeout_minutes`` bounds every collective: a rank that waits longer (a peer hung, or a
    checkpoint of a large model still being written on another rank) fails the job instead of
    hanging it. DeepSpeed's default is 30 minutes.
    """

    steps: int = 200
    lr: float = 1e-3
    warmup_steps: int = 50
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    eval_interval: int = 100
    checkpoint_interval: int = 100
    modes: tuple[str, ...] = (Mode.GRADVAC.value,)
    dist_timeout_minutes: float = 30.0

    def __post_init__(self) -> None:
        _positive("training.steps", self.steps)
        _positive("training.dist_timeout_minutes", self.dist_timeout_minutes, float)
        _positive("training.lr", self.lr, float)
        _positive("training.eval_interval", self.eval_interval)
        _positive("training.checkpoint_interval", self.checkpoint_interval)
        if (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ConfigError(f"training.warmup_steps = {self.warmup_steps!r} must be an integer >= 0")
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "modes", tuple(self.modes))
        allowed = [m.value for m in Mode]
        if (
            not self.modes
            or any(m not in allowed for m in self.modes)
            or len(set(self.modes)) != len(self.modes)
        ):
            raise ConfigError(f"training.modes = {list(self.modes)!r}: give distinct modes from {allowed}")


@dataclass(frozen=True)
class EvaluationSection:
    """Decoding of the test split and sacreBLEU scoring."""

    beam_size: int = 1
    max_length: int = 64
    length_penalty: float = 1.0
    max_sentences: int = 500
    batch_tokens: int = 4096

    def __post_init__(self) -> None:
        for name in ("beam_size", "max_length", "max_sentences", "batch_tokens"):
            _positive(f"evaluation.{name}", getattr(self, name))


@dataclass(frozen=True)
class RunConfig:
    """A whole training run; see the module docstring."""

    run_dir: str
    model: ModelSection
    data: DataConfig
    training: TrainingSection
    evaluation: EvaluationSection
    deepspeed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "gradient_accumulation_steps" in self.deepspeed:
            raise ConfigError(
                "deepspeed.gradient_accumulation_steps is derived from data.batching.micro_batches_per_step; "
                "remove it from the deepspeed section"
            )
        GradVacConfig.from_deepspeed_config(self.deepspeed)
        if self.data.is_lm and self.model.kind != "decoder":
            raise ConfigError(
                f"model.kind = {self.model.kind!r}: language-model pretraining (data.source: monolingual) "
                "trains the GPT network of kind 'decoder'"
            )
        needed = self.data.max_positions + (1 if self.data.is_lm else 0)
        if self.evaluation.batch_tokens < needed:
            raise ConfigError(
                f"evaluation.batch_tokens = {self.evaluation.batch_tokens} must hold one example of "
                f"{needed} tokens (data.max_positions{' + 1' if self.data.is_lm else ''})"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown top-level field(s) {unknown}; allowed fields are {allowed}")
        if "run_dir" not in values:
            raise ConfigError("run_dir is required (where checkpoints, logs and results go)")
        return cls(
            run_dir=str(values["run_dir"]),
            model=dataclass_from_section(ModelSection, values.get("model"), "model"),
            data=DataConfig.from_dict(values.get("data") or {}),
            training=dataclass_from_section(TrainingSection, values.get("training"), "training"),
            evaluation=dataclass_from_section(EvaluationSection, values.get("evaluation"), "evaluation"),
            deepspeed=dict(values.get("deepspeed") or {}),
        )

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        """Read a YAML run config; ``overrides`` maps dotted keys (``training.steps``) to values."""
        values = read_yaml(Path(path))
        for dotted, value in (overrides or {}).items():
            node = values
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return cls.from_dict(values)

    def deepspeed_config(self, mode: str, tasks: list[str]) -> dict[str, Any]:
        """The DeepSpeed config of one training mode, with the tasks of the data and the derived
        gradient accumulation steps."""
        ds = {key: value for key, value in self.deepspeed.items()}
        ds["gradvac"] = {**self.deepspeed["gradvac"], "mode": mode, "tasks": list(tasks)}
        ds["gradient_accumulation_steps"] = self.data.batching.micro_batches_per_step
        ds.setdefault("train_micro_batch_size_per_gpu", self.data.batching.max_sentences)
        return ds
