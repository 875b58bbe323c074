"""Capacity planner: per-rank memory, communication and compute of GradVac on DeepSpeed ZeRO.

``plan(params, tasks, ...)`` returns a :class:`Plan`; ``main(argv)`` is the ``gradvac-plan`` command.
"""

from gradvac_ds.planning.cli import main
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
    "main",
    "model_sizes",
    "num_groups",
    "plan",
    "plan_inputs",
]
