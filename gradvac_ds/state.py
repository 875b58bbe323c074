"""The persistent GradVac state and the one step core both front ends share.

A step is planned (:meth:`GradVacState.plan`: the step's task orders and the solver's result
against the current targets) and then either committed (:meth:`GradVacState.commit`: the targets
move, the step count advances) or dropped, when the step was skipped. The engine and
:class:`~gradvac_ds.local.LocalGradVac` differ only in where the Gram comes from and where the
combined gradient goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gradvac_ds.algorithm import SolveResult, draw_task_orders, step_generator
from gradvac_ds.errors import NonFiniteGramError, StateMismatchError
from gradvac_ds.weighting import Weighting

STATE_VERSION = 1


@dataclass(frozen=True)
class StepPlan:
    """One planned step.

    step:   the state's step count it was planned at (commit refuses a stale plan)
    orders: [K, K - 1] long, the task visiting orders drawn from ``step_generator(seed, step)``
    result: the solver's output, or None when the Gram was not finite (the step must be skipped)
    """

    step: int
    orders: torch.Tensor
    result: SolveResult | None


class GradVacState:
    """EMA target similarities ``targets[L, K, K]`` (float64, start at 0) and the step count.

    Tasks are registered by name. With a fixed task list (``discover=False``) an unknown task is an
    error; with discovery the list grows as new tasks appear, and a new task's targets start at 0
    against every other task.
    """

    def __init__(
        self, group_names: Sequence[str], task_names: Sequence[str] = (), *, discover: bool = False
    ) -> None:
        if len(set(group_names)) != len(group_names) or not group_names:
            raise ValueError(f"group names must be unique and non-empty, got {list(group_names)}")
        self.group_names: tuple[str, ...] = tuple(group_names)
        self.task_names: list[str] = []
        self.targets = torch.zeros(len(self.group_names), 0, 0, dtype=torch.float64)
        self.step = 0
        self.discover = discover
        for name in task_names:
            self.add_task(name)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def task_index(self, name: str) -> int:
        """Index of a task; with discovery an unseen task is registered first."""
        if name in self.task_names:
            return self.task_names.index(name)
        if self.discover:
            return self.add_task(name)
        raise KeyError(f"unknown task {name!r}; the configured gradvac.tasks are {self.task_names}")

    def add_task(self, name: str) -> int:
        """Register a task (targets 0 against all others) and return its index."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a task name must be a non-empty string, got {name!r}")
        if name in self.task_names:
            raise ValueError(f"task {name!r} is already registered")
        k = self.num_tasks
        grown = torch.zeros(len(self.group_names), k + 1, k + 1, dtype=torch.float64)
        grown[:, :k, :k] = self.targets
        self.targets = grown
        self.task_names.append(name)
        return k

    def plan(
        self,
        gram: torch.Tensor,
        active: torch.Tensor,
        *,
        weighting: Weighting,
        seed: int,
    ) -> StepPlan:
        """Plan the current step from its Gram [L, K, K] and active tasks [K] with ``weighting``;
        nothing changes yet. The task orders are drawn for every method (sequential ones use them),
        so that the cross-rank agreement check is the same for all."""
        orders = draw_task_orders(self.num_tasks, step_generator(seed, self.step))
        try:
            result = weighting(gram, self.targets, active=active, orders=orders)
        except NonFiniteGramError:
            result = None
        return StepPlan(self.step, orders, result)

    def commit(self, plan: StepPlan) -> None:
        """The planned step was applied: adopt its targets and advance the step count."""
        if plan.step != self.step or plan.result is None:
            raise ValueError(
                f"cannot commit a plan for step {plan.step} (result: {plan.result is not None}) "
                f"at step {self.step}"
            )
        self.targets = plan.result.targets
        self.step += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "targets": self.targets.clone(),
            "task_names": list(self.task_names),
            "group_names": list(self.group_names),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved state; its groups must equal ours.

        With a fixed task list the saved tasks must equal ours. With discovery the saved list must
        extend the tasks registered so far, and this state adopts it.
        """
        if state.get("version") != STATE_VERSION:
            raise StateMismatchError(f"GradVac state version {state.get('version')!r} != {STATE_VERSION}")
        if tuple(state["group_names"]) != self.group_names:
            raise StateMismatchError(
                f"the saved GradVac state has groups {state['group_names']}, this model has "
                f"{list(self.group_names)}: was the granularity or the model changed?"
            )
        saved_tasks = list(state["task_names"])
        compatible = (
            saved_tasks[: self.num_tasks] == self.task_names
            if self.discover
            else saved_tasks == self.task_names
        )
        if not compatible:
            raise StateMismatchError(
                f"the saved GradVac state has tasks {saved_tasks}, this run has {self.task_names}"
            )
        targets = state["targets"]
        expected = (len(self.group_names), len(saved_tasks), len(saved_tasks))
        if tuple(targets.shape) != expected:
            raise StateMismatchError(f"saved targets have shape {tuple(targets.shape)}, expected {expected}")
        self.task_names = saved_tasks
        self.targets = targets.to(torch.float64).clone()
        self.step = int(state["step"])
