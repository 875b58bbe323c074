"""GradVacConfig (the ``"gradvac"`` section of a DeepSpeed config) and the one loader that every
configuration section of the package goes through.

Example section::

    "gradvac": {
        "mode": "gradvac",            # gradvac | pcgrad | sum
        "beta": 0.01,                 # EMA rate of the target similarities, in [0, 1]
        "granularity": "layer",       # model | enc_dec | layer | matrix
        "tasks": ["de-en", "fr-en"],  # or "discover": tasks are registered as they first appear
        "seed": 0,                    # seeds the per-step task visiting orders (same on every rank)
        "buffer_dtype": "fp32",       # fp32 | bf16: dtype of the per-task gradient buffers
        "gram_dtype": "fp32",         # fp32 (GEMM blocks summed in fp64) | fp64: Gram products
        "max_target": 0.999,          # bound on |target| inside the correction (see algorithm.py)
        "log_interval": 10,           # steps between monitor writes; 0 disables
        "consistency_check_interval": 100  # steps between cross-rank agreement checks; 0 disables
    }

:func:`load_section` builds any frozen config dataclass from a parsed JSON/YAML mapping: unknown and
missing keys, values of the wrong type (a bool for an int, a string for a number) and non-finite
numbers are refused with the dotted field name; nested dataclass fields recurse. The dataclass's
own ``__post_init__`` then checks ranges and choices, raising :class:`FieldError` for one of its
fields, which the loader reports with the dotted path and the value.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from gradvac_ds.algorithm import DEFAULT_MAX_TARGET
from gradvac_ds.errors import ConfigError
from gradvac_ds.grouping import Granularity
from gradvac_ds.weighting import WEIGHTINGS, Weighting, make_weighting

DISCOVER = "discover"
BUFFER_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
GRAM_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp64": torch.float64}

T = TypeVar("T")


class FieldError(ConfigError):
    """Raised by a config dataclass's checks for one of its fields; :func:`load_section` prefixes
    the section path."""

    def __init__(self, field: str, value: Any, requirement: str) -> None:
        super().__init__(f"{field} = {value!r} {requirement}")
        self.field, self.value, self.requirement = field, value, requirement


def check_choice(field: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise FieldError(field, value, f"is not allowed; choose one of {list(allowed)}")


def check_range(field: str, value: float, low: float | None = None, high: float | None = None) -> None:
    """``low <= value <= high`` (either bound may be None)."""
    if (low is not None and value < low) or (high is not None and value > high):
        kind = "an integer" if isinstance(value, int) else "a number"
        bounds = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        raise FieldError(field, value, f"must be {kind} in {bounds}")


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``: the values a parallel size dividing ``n`` may take."""
    return [d for d in range(1, n + 1) if n % d == 0]


def check_positive(field: str, value: float) -> None:
    if value <= 0:
        kind = "integer" if isinstance(value, int) else "number"
        raise FieldError(field, value, f"must be a positive {kind}")


def load_section(cls: type[T], values: Any, path: str = "") -> T:
    """Build config dataclass ``cls`` from ``values`` (a mapping; None means all defaults);
    ``path`` is the section's dotted name in error messages ("" for a whole file)."""
    if values is None:
        values = {}
    where = path or "the config"
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{where} must be a mapping of field: value, got {type(values).__name__} {values!r}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {where}; allowed fields are {list(fields)}")
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where} is missing required field(s) {missing}")
    hints = typing.get_type_hints(cls)
    prefix = f"{path}." if path else ""
    kwargs = {name: _convert(hints[name], value, f"{prefix}{name}") for name, value in values.items()}
    try:
        return cls(**kwargs)
    except FieldError as err:
        raise ConfigError(f"{prefix}{err.field} = {err.value!r} {err.requirement}") from None


def _convert(hint: Any, value: Any, path: str) -> Any:
    """``value`` checked against type ``hint`` (and normalised: lists -> tuples, ints -> floats)."""
    if dataclasses.is_dataclass(hint):
        return load_section(hint, value, path)
    origin = typing.get_origin(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path} = {value!r} must be {_describe(hint)}")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{path} = {value!r} must be a list")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{path} = {value!r} must be a list of {len(args)} values")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} = {value!r} must be a mapping")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} = {value!r} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} = {value!r} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path} = {value!r} must be a number")
        if not math.isfinite(value):
            raise ConfigError(f"{path} = {value!r} must be a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} = {value!r} must be a string")
        return value
    raise TypeError(f"load_section cannot check fields of type {hint!r} ({path})")


def _describe(hint: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    options = typing.get_args(hint)
    return " or ".join(names.get(o, "a list" if typing.get_origin(o) is tuple else str(o)) for o in options)


@dataclass(frozen=True)
class GradVacConfig:
    """Validated GradVac settings (defaults: the paper's beta = 1e-2, per-layer groups)."""

    mode: str = "gradvac"
    """A method of :data:`gradvac_ds.weighting.WEIGHTINGS`: gradvac | pcgrad | sum (no surgery:
    equals plain DeepSpeed) | upgrad | mgda | imtl_g | aligned_mtl."""
    beta: float = 1e-2
    """GradVac's EMA rate of the target similarities, in [0, 1] (paper: 1e-2)."""
    granularity: str = Granularity.LAYER.value
    """Parameter groups: model | enc_dec | layer | matrix."""
    tasks: tuple[str, ...] | str = DISCOVER
    """The task names, or "discover" to register tasks as they first appear."""
    seed: int = 0
    """Seeds the per-step task visiting orders (identical on every rank)."""
    buffer_dtype: str = "fp32"
    """dtype of the per-task gradient buffers: fp32 | bf16 (halves their memory)."""
    gram_dtype: str = "fp32"
    """dtype of the Gram products: fp32 (float32 GEMMs over 4096-column blocks, summed in float64;
    cosine error ~1e-7, see :mod:`gradvac_ds.gram`) | fp64 (products in float64)."""
    max_target: float = DEFAULT_MAX_TARGET
    """Bound on |target| inside the correction formula, in (0, 1): caps the correction at
    ``||g_i'|| (t / sqrt(1 - t^2) + 1)`` (23.4x at 0.999)."""
    log_interval: int = 10
    """Steps between writes of per-pair cosines and fire rates to DeepSpeed's monitor; 0 disables."""
    consistency_check_interval: int = 100
    """Steps between cross-rank checks of the task orders and weights; 0 disables."""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per-method options, ``{mode: {option: value}}`` (e.g. ``{mgda: {max_iters: 250}}``); each
    method's ``Options`` dataclass lists its fields. ``beta`` and ``max_target`` above are GradVac's
    (and PCGrad's ``max_target``); every mode's options are checked, the run uses its own."""

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, list(WEIGHTINGS))
        check_choice("granularity", self.granularity, [g.value for g in Granularity])
        check_choice("buffer_dtype", self.buffer_dtype, list(BUFFER_DTYPES))
        check_choice("gram_dtype", self.gram_dtype, list(GRAM_DTYPES))
        check_range("beta", self.beta, 0.0, 1.0)
        if not 0.0 < self.max_target < 1.0:
            raise FieldError("max_target", self.max_target, "must be in (0, 1)")
        for name in ("seed", "log_interval", "consistency_check_interval"):
            check_range(name, getattr(self, name), 0)
        for mode in self.options:
            check_choice("options", mode, list(WEIGHTINGS))
            if not isinstance(self.options[mode], Mapping):
                raise FieldError(f"options.{mode}", self.options[mode], "must be a mapping of option: value")
            try:
                self.weighting_of(mode)
            except ValueError as err:
                raise FieldError(f"options.{mode}", self.options[mode], f"is not valid: {err}") from None
        tasks = self.tasks
        if isinstance(tasks, str):
            if tasks != DISCOVER:
                raise FieldError("tasks", tasks, f"must be a list of task names or {DISCOVER!r}")
            return
        if not tasks or not all(t for t in tasks):
            raise FieldError("tasks", list(tasks), "must be a non-empty list of non-empty names")
        if len(set(tasks)) != len(tasks):
            raise FieldError("tasks", list(tasks), "holds duplicate names")

    def weighting_of(self, mode: str) -> Weighting:
        """The method ``mode`` with its ``options`` (GradVac's ``beta``/``max_target`` come from the
        fields above when the method has them)."""
        cls = WEIGHTINGS[mode]
        inherited = {f.name for f in dataclasses.fields(cls.Options)} & {"beta", "max_target"}
        options = {**{name: getattr(self, name) for name in inherited}, **self.options.get(mode, {})}
        return make_weighting(mode, options)

    @property
    def weighting(self) -> Weighting:
        """The configured method (:attr:`mode`)."""
        return self.weighting_of(self.mode)

    @property
    def buffer_torch_dtype(self) -> torch.dtype:
        return BUFFER_DTYPES[self.buffer_dtype]

    @property
    def gram_torch_dtype(self) -> torch.dtype:
        return GRAM_DTYPES[self.gram_dtype]

    @classmethod
    def from_dict(cls, section: Any) -> GradVacConfig:
        """Build from the ``"gradvac"`` section; see :func:`load_section`."""
        if section is None:
            raise ConfigError('the "gradvac" section is null; give a mapping (may be empty: {} for defaults)')
        return load_section(cls, section, "gradvac")

    def to_dict(self) -> dict[str, Any]:
        section = asdict(self)
        if isinstance(self.tasks, tuple):
            section["tasks"] = list(self.tasks)
        return section


def split_config(config: dict[str, Any] | str | Path) -> tuple[dict[str, Any], GradVacConfig]:
    """The DeepSpeed config without its ``"gradvac"`` section, and that section validated, together
    with the DeepSpeed fields GradVac relies on; all before any process group starts."""
    if not isinstance(config, dict):
        path = Path(config)
        try:
            config = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"DeepSpeed config {path}: {err}") from None
        if not isinstance(config, dict):
            raise ConfigError(f"DeepSpeed config {path} must hold a JSON object")
    if "gradvac" not in config:
        raise ConfigError('the DeepSpeed config has no "gradvac" section')
    gradvac = GradVacConfig.from_dict(config["gradvac"])
    _check_deepspeed_fields(config)
    ds_config = copy.deepcopy({k: v for k, v in config.items() if k != "gradvac"})
    return ds_config, gradvac


def _check_deepspeed_fields(config: Mapping[str, Any]) -> None:
    """The DeepSpeed settings GradVac depends on, checked early with the field's name (DeepSpeed
    itself would fail later, or with a TypeError)."""
    gas = config.get("gradient_accumulation_steps")
    if gas is not None and gas != "auto" and (isinstance(gas, bool) or not isinstance(gas, int) or gas < 1):
        raise ConfigError(
            f"gradient_accumulation_steps = {gas!r} must be a positive integer "
            "(the number of micro-batches per optimizer step, all tasks together)"
        )
    enabled = [
        name
        for name in ("fp16", "bf16")
        if isinstance(config.get(name), Mapping) and config[name].get("enabled") in (True, "auto")
    ]
    if len(enabled) > 1:
        raise ConfigError('fp16.enabled and bf16.enabled are both true; enable at most one of "fp16", "bf16"')
