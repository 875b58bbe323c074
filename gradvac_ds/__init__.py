"""gradvac_ds: Gradient Vaccine (Wang et al., ICLR 2021) inside DeepSpeed ZeRO.

The public entry point is :func:`initialize` (``deepspeed.initialize`` plus GradVac); users without
DeepSpeed use :class:`gradvac_ds.local.LocalGradVac`. DeepSpeed is imported only when needed.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def initialize(**kwargs: Any):
    """See :func:`gradvac_ds.engine.initialize`."""
    from gradvac_ds.engine import initialize as _initialize

    return _initialize(**kwargs)
