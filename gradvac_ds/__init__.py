"""gradvac_ds: Gradient Vaccine (Wang et al., ICLR 2021) inside DeepSpeed ZeRO.

The library needs torch and deepspeed only. :func:`initialize` is ``deepspeed.initialize`` plus
GradVac; :class:`LocalGradVac` applies the same solver in one process without DeepSpeed. The
training application (``gradvac_ds.training``) and the tools (``gradvac_ds.analysis``,
``gradvac_ds.planning``) sit on top and are installed through extras.

Names are imported on first use, so that ``import gradvac_ds.analysis.log`` (numpy only) does not
start DeepSpeed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_HOMES = {
    "initialize": "engine",
    "GradVacEngine": "engine",
    "StepOutcome": "engine",
    "LocalGradVac": "local",
    "GradVacConfig": "config",
    "Mode": "algorithm",
    "WEIGHTINGS": "weighting",
    "make_weighting": "weighting",
    "ParallelLayout": "layout",
    "Comm": "comm",
    "StepObserver": "comm",
    "GradVacError": "errors",
    "ConfigError": "errors",
    "NonFiniteGramError": "errors",
    "RankDivergenceError": "errors",
    "StateMismatchError": "errors",
    "TaskProtocolError": "errors",
    "UnsupportedEngineError": "errors",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'gradvac_ds' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gradvac_ds.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
