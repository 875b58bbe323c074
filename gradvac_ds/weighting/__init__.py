"""Multi-task weightings on the per-group Gram of the task gradients (see :mod:`.base`).

``WEIGHTINGS`` maps each ``gradvac.mode`` to its method; :func:`make_weighting` builds one from the
mode and its ``gradvac.options``. A new method is one file with a :class:`~.base.Weighting`
subclass and one entry here: the engine, :class:`~gradvac_ds.local.LocalGradVac`, the config, the
statistics and the analysis take it from this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gradvac_ds.weighting.aligned_mtl import AlignedMTL
from gradvac_ds.weighting.base import GramianWeighting, Weighting
from gradvac_ds.weighting.imtl_g import IMTLG
from gradvac_ds.weighting.mgda import MGDA
from gradvac_ds.weighting.sum import Sum
from gradvac_ds.weighting.surgery import GradVac, PCGrad
from gradvac_ds.weighting.upgrad import UPGrad

WEIGHTINGS: dict[str, type[Weighting]] = {
    cls.name: cls for cls in (GradVac, PCGrad, Sum, UPGrad, MGDA, IMTLG, AlignedMTL)
}


def make_weighting(mode: str, options: Mapping[str, Any] | None = None) -> Weighting:
    """The method ``mode`` with its options; ValueError naming the mode or option at fault."""
    if mode not in WEIGHTINGS:
        raise ValueError(f"mode {mode!r} is not allowed; choose one of {list(WEIGHTINGS)}")
    cls = WEIGHTINGS[mode]
    return cls(cls.parse_options(options or {}))


__all__ = ["WEIGHTINGS", "GramianWeighting", "Weighting", "make_weighting"]
