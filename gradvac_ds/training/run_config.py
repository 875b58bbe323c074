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

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradvac_ds.config import (
    ConfigError,
    FieldError,
    check_choice,
    check_positive,
    check_range,
    load_section,
    split_config,
)
from gradvac_ds.training.config_file import load_config
from gradvac_ds.training.data import DataConfig
from gradvac_ds.training.modeling.config import ModelConfig, config_from_mapping, resolve_config
from gradvac_ds.training.modeling.registry import MODEL_SPECS
from gradvac_ds.training.schedules import LR_SCHEDULES
from gradvac_ds.weighting import WEIGHTINGS


@dataclass(frozen=True)
class ModelSection:
    """Which architecture to build: a preset of ``models/`` (or a YAML path), its kind (a key of
    :data:`~gradvac_ds.training.modeling.registry.MODEL_SPECS`), its tensor-parallel size.

    ``overrides`` sets fields of the preset's :class:`~gradvac_ds.training.modeling.config.ModelConfig`
    (e.g. ``{dropout: 0.0, label_smoothing: 0.1}``); unknown fields and bad values are refused when
    the run config is read.
    """

    preset: str = "tiny"
    kind: str = "encdec"
    tensor_parallel: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, tuple(MODEL_SPECS))
        check_positive("tensor_parallel", self.tensor_parallel)
        MODEL_SPECS[self.kind].check_tensor_parallel(self.tensor_parallel)
        self.model_config()

    def model_config(self) -> ModelConfig:
        """The preset with ``overrides`` applied, validated."""
        base = resolve_config(self.preset)
        if not self.overrides:
            return base
        return config_from_mapping({**dataclasses.asdict(base), **self.overrides})


@dataclass(frozen=True)
class TrainingSection:
    """Optimisation: AdamW with linear warm-up to ``lr``, then ``lr_schedule`` (``inverse_sqrt``,
    ``cosine`` to ``min_lr_ratio * lr`` at the last step, ``constant``, or ``wsd``: constant, then
    linear to ``min_lr_ratio * lr`` over the last ``decay_fraction`` of the steps; see
    :mod:`gradvac_ds.training.schedules`).

    ``seeds``: train every mode once per seed (``<run_dir>/seed<s>/<mode>/``, then the comparison
    of ``gradvac-compare``); empty (the default) trains each mode once into ``<run_dir>/<mode>/``.

    ``dist_timeout_minutes`` bounds every collective: a rank that waits longer (a peer hung, or a
    checkpoint of a large model still being written on another rank) fails the job instead of
    hanging it. DeepSpeed's default is 30 minutes.

    ``similarity_window``: optimizer steps per window of the similarity log (the unit the analysis
    bootstraps over; see :mod:`gradvac_ds.analysis.log`). A run of S steps has about S / window
    windows until the log's cap of 512 merges them pairwise.

    ``max_consecutive_skipped_steps`` stops the run with an error after that many optimizer steps
    in a row were skipped (a non-finite gradient, or DeepSpeed's overflow check); 0 never stops.
    The default, 50, lets DeepSpeed's own fp16 loss scaler calibrate: from its default initial scale
    2^16 (hysteresis 2, minimum scale 1) it skips 17 steps in a row and raises on its own at the 18th
    (from 2^32, the largest initial scale in common use, at the 34th). A bf16/fp32 run has no scale to
    calibrate: a streak of skips there means the model or the data went bad, and 50 wasted steps
    are few.

    ``threads`` (intra-op threads per rank; None keeps ``OMP_NUM_THREADS`` or torch's default) and
    ``deterministic`` (torch's deterministic kernels) make two runs of one config bitwise equal on
    one machine; see :mod:`gradvac_ds.training.reproducibility`.
    """

    steps: int = 200
    lr: float = 1e-3
    warmup_steps: int = 50
    lr_schedule: str = "inverse_sqrt"
    min_lr_ratio: float = 0.0
    decay_fraction: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    eval_interval: int = 100
    checkpoint_interval: int = 100
    modes: tuple[str, ...] = ("gradvac",)
    seeds: tuple[int, ...] = ()
    dist_timeout_minutes: float = 30.0
    max_consecutive_skipped_steps: int = 50
    similarity_window: int = 50
    threads: int | None = None
    deterministic: bool = True

    def __post_init__(self) -> None:
        positive = ("steps", "dist_timeout_minutes", "lr", "eval_interval", "checkpoint_interval")
        for name in (*positive, "similarity_window"):
            check_positive(name, getattr(self, name))
        check_range("warmup_steps", self.warmup_steps, 0)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_range("min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("decay_fraction", self.decay_fraction, 0.0, 1.0)
        check_range("max_consecutive_skipped_steps", self.max_consecutive_skipped_steps, 0)
        if self.threads is not None:
            check_positive("threads", self.threads)
        check_range("weight_decay", self.weight_decay, 0.0)
        for beta in self.betas:
            check_range("betas", beta, 0.0, 1.0)
        allowed = list(WEIGHTINGS)
        if (
            not self.modes
            or any(m not in allowed for m in self.modes)
            or len(set(self.modes)) != len(self.modes)
        ):
            raise FieldError("modes", list(self.modes), f"must list distinct modes from {allowed}")
        if any(seed < 0 for seed in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise FieldError("seeds", list(self.seeds), "must be a list of distinct integers >= 0")


@dataclass(frozen=True)
class EvaluationSection:
    """Decoding of the test split and sacreBLEU scoring; validation loss on the dev split.

    ``max_sentences``: the first test examples decoded per task; ``max_valid_sentences``: the first
    dev examples of each task in the validation loss (None: all of them).
    """

    beam_size: int = 1
    max_length: int = 64
    length_penalty: float = 1.0
    max_sentences: int = 500
    max_valid_sentences: int | None = None
    batch_tokens: int = 4096

    def __post_init__(self) -> None:
        for name in ("beam_size", "max_length", "max_sentences", "batch_tokens"):
            check_positive(name, getattr(self, name))
        if self.max_valid_sentences is not None:
            check_positive("max_valid_sentences", self.max_valid_sentences)


@dataclass(frozen=True)
class RunConfig:
    """A whole training run; see the module docstring."""

    run_dir: str
    """Where checkpoints, logs and results go (required)."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """A DeepSpeed config with its "gradvac" section."""

    def __post_init__(self) -> None:
        if not self.run_dir.strip():
            raise FieldError("run_dir", self.run_dir, "must name a directory")
        if "gradient_accumulation_steps" in self.deepspeed:
            raise ConfigError(
                "deepspeed.gradient_accumulation_steps is derived from data.batching.micro_batches_per_step; "
                "remove it from the deepspeed section"
            )
        split_config(self.deepspeed)
        if self.data.is_lm and not MODEL_SPECS[self.model.kind].language_model:
            kinds = [name for name, spec in MODEL_SPECS.items() if spec.language_model]
            raise ConfigError(
                f"model.kind = {self.model.kind!r}: language-model pretraining (data.source: monolingual) "
                f"trains a kind with a language model: {kinds}"
            )
        needed = self.data.max_positions + (1 if self.data.is_lm else 0)
        if self.evaluation.batch_tokens < needed:
            raise ConfigError(
                f"evaluation.batch_tokens = {self.evaluation.batch_tokens} must hold one example of "
                f"{needed} tokens (data.max_positions{' + 1' if self.data.is_lm else ''})"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build and validate a whole run config (see :func:`gradvac_ds.config.load_section`)."""
        return load_section(cls, values)

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
        """Read a YAML run config (``extends`` resolved) with ``overrides`` mapping dotted keys
        (``training.steps``) to values; see :mod:`gradvac_ds.training.config_file`."""
        return cls.from_dict(load_config(path, overrides))

    def deepspeed_config(self, mode: str, tasks: list[str]) -> dict[str, Any]:
        """The DeepSpeed config of one training mode, with the tasks of the data and the derived
        gradient accumulation steps."""
        ds = {key: value for key, value in self.deepspeed.items()}
        ds["gradvac"] = {**self.deepspeed["gradvac"], "mode": mode, "tasks": list(tasks)}
        ds["gradient_accumulation_steps"] = self.data.batching.micro_batches_per_step
        ds.setdefault("train_micro_batch_size_per_gpu", self.data.batching.max_sentences)
        return ds
