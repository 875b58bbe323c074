"""Capacity planner: per-rank memory, communication and compute of GradVac on DeepSpeed ZeRO.

``plan(params, tasks, ...)`` returns a :class:`Plan`; the ``gradvac-plan`` command is
``python -m gradvac_ds.planning``.
"""

from gradvac_ds.planning.costs import Plan, plan, plan_inputs
from gradvac_ds.planning.errors import PlanError
from gradvac_ds.planning.inputs import ActivationInputs, PlanInputs, layout_of, num_groups
from gradvac_ds.planning.presets import ModelSizes, model_sizes

__all__ = [
    "ActivationInputs",
    "ModelSizes",
    "Plan",
    "PlanError",
    "PlanInputs",
    "layout_of",
    "model_sizes",
    "num_groups",
    "plan",
    "plan_inputs",
]
