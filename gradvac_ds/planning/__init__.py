"""Capacity planner: per-rank memory, communication and compute of GradVac on DeepSpeed ZeRO.

``plan(params, tasks, ...)`` plans a model given by its sizes; ``plan_model(spec, tasks, ...)``
reads P, Ψ, the optimizer-group layout and L off a model of :mod:`gradvac_ds.training.modeling`
built on the meta device. Both return a :class:`Plan`. The command line is ``gradvac-plan``.
"""

from gradvac_ds.planning.costs import Plan, plan, plan_inputs, plan_model
from gradvac_ds.planning.errors import PlanError
from gradvac_ds.planning.inputs import ActivationInputs, PlanInputs, layout_of
from gradvac_ds.planning.model_layout import ModelLayout, model_layout

__all__ = [
    "ActivationInputs",
    "ModelLayout",
    "Plan",
    "PlanError",
    "PlanInputs",
    "layout_of",
    "model_layout",
    "plan",
    "plan_inputs",
    "plan_model",
]
