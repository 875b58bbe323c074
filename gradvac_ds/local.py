"""GradVac in one process, for users without DeepSpeed.

Give it per-task gradients (dicts of tensors) or per-task losses; it writes the combined gradient
into ``param.grad`` and returns the step's :class:`~gradvac_ds.algorithm.SolveResult`. It runs the
same grouping, Gram and solver code as the DeepSpeed engine::

    gv = LocalGradVac(model, GradVacConfig(tasks=("de-en", "fr-en")))
    gv.backward({"de-en": loss_de, "fr-en": loss_fr})
    optimizer.step()
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from gradvac_ds.algorithm import SolveResult
from gradvac_ds.config import DISCOVER, GradVacConfig
from gradvac_ds.gram import Segment, accumulate_gram, combine_segments, merge_segments
from gradvac_ds.grouping import ParameterGrouping, group_parameters
from gradvac_ds.state import GradVacState


class LocalGradVac:
    """Single-process GradVac over the trainable parameters of ``model``."""

    def __init__(self, model: torch.nn.Module, config: GradVacConfig) -> None:
        self.config = config
        self._weighting = config.weighting
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.grouping: ParameterGrouping = group_parameters(self.params, config.granularity)
        discover = config.tasks == DISCOVER
        self.state = GradVacState(
            self.grouping.group_names, () if discover else config.tasks, discover=discover
        )
        offset, segments = 0, []
        for name, p in self.params:
            segments.append(Segment(offset, offset + p.numel(), self.grouping.group_of[name]))
            offset += p.numel()
        self.numel = offset
        self.segments = merge_segments(segments)

    def _flatten(self, grads: Mapping[str, torch.Tensor | None], out: torch.Tensor) -> None:
        offset = 0
        for name, p in self.params:
            g = grads.get(name)
            n = p.numel()
            if g is None:
                out[offset : offset + n].zero_()
            else:
                out[offset : offset + n].copy_(g.reshape(-1))
            offset += n

    def combine(self, task_grads: Mapping[str, Mapping[str, torch.Tensor | None]]) -> SolveResult | None:
        """Set ``p.grad`` to the GradVac combination of the tasks' gradients.

        task_grads: task name -> (parameter name -> gradient or None for no gradient).
        Returns None, and leaves ``p.grad`` as None, when a task's gradient is not finite: the
        step must be skipped; the EMA targets and the step count are not updated.
        """
        state, cfg = self.state, self.config
        indices = [state.task_index(t) for t in task_grads]
        num_tasks = state.num_tasks
        p0 = self.params[0][1]
        buffer = torch.zeros(num_tasks, self.numel, dtype=p0.dtype, device=p0.device)
        for k, grads in zip(indices, task_grads.values(), strict=True):
            self._flatten(grads, buffer[k])
        gram = torch.zeros(self.grouping.num_groups, num_tasks, num_tasks, dtype=torch.float64)
        accumulate_gram(gram, buffer, self.segments)
        active = torch.zeros(num_tasks, dtype=torch.bool)
        active[indices] = True
        plan = state.plan(gram, active, weighting=self._weighting, seed=cfg.seed)
        result = plan.result
        if result is None:
            for _, p in self.params:
                p.grad = None
            return None
        state.commit(plan)
        combined = combine_segments(buffer, self.segments, result.weights, torch.empty_like(buffer[0]))
        offset = 0
        for _, p in self.params:
            p.grad = combined[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        return result

    def backward(self, losses: Mapping[str, torch.Tensor]) -> SolveResult | None:
        """Back-propagate each task's loss separately, then :meth:`combine`."""
        tensors = [p for _, p in self.params]
        task_grads = {}
        for task, loss in losses.items():
            grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
            task_grads[task] = {n: g for (n, _), g in zip(self.params, grads, strict=True)}
        return self.combine(task_grads)
