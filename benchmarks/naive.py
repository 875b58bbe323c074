"""The GradVac users would write without gradvac_ds: data parallel, full task gradients on every rank.

This is how LibMTL-style trainers and PCGrad/GradVac ports run data-parallel: the model is
replicated (DDP or DeepSpeed stage 0); after each task's backward the task's full flattened
gradient ``g_k`` [P] is all-reduced (averaged over the N ranks) into row k of a ``[K, P]`` buffer;
then every rank runs the dense GradVac loop (:func:`gradvac_ds.reference.dense_gradvac_groups`:
pairwise dot products and norms on the flat vectors, group by group) on the same K vectors, writes
the update into ``param.grad``, clips and steps its optimizer.

Per rank it holds K * P task-gradient elements (gradvac_ds: K * P / N) and all-reduces K * P
elements per step (ring wire bytes 2 (N - 1) / N of that; gradvac_ds: DeepSpeed's own
reduce-scatters plus one [L, K, K] Gram).
"""

from __future__ import annotations

import torch
from deepspeed import comm as dist

from gradvac_ds.algorithm import draw_task_orders, step_generator
from gradvac_ds.comm import Comm
from gradvac_ds.grouping import group_parameters
from gradvac_ds.reference import dense_gradvac_groups


class NaiveDataParallelGradVac:
    """Replicated model, K full all-reduced task gradients per step, dense GradVac on every rank.

    The loss of each micro-batch is divided by the number of micro-batches of the step, as
    DeepSpeed does with ``gradient_accumulation_steps``, so that ``mode: sum`` is plain data
    parallel training.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        tasks: list[str],
        *,
        mode: str = "gradvac",
        beta: float = 0.01,
        clip: float = 1.0,
        seed: int = 0,
        granularity: str = "layer",
        comm: Comm | None = None,
    ) -> None:
        self.model, self.optimizer, self.tasks = model, optimizer, list(tasks)
        self.mode, self.beta, self.clip, self.seed = mode, beta, clip, seed
        self.comm = comm or Comm()
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        grouping = group_parameters(self.params, granularity)
        self.slices: list[list[slice]] = [[] for _ in grouping.group_names]
        offset = 0
        for name, p in self.params:
            self.slices[grouping.group_of[name]].append(slice(offset, offset + p.numel()))
            offset += p.numel()
        self.numel = offset
        self.num_groups = grouping.num_groups
        self.targets = torch.zeros(self.num_groups, len(tasks), len(tasks), dtype=torch.float64)
        device = self.params[0][1].device  # the task rows are reduced and applied where the model is
        self.buffer = torch.zeros(len(tasks), offset, dtype=torch.float32, device=device)
        self.step_count = 0

    @property
    def task_buffer_bytes(self) -> int:
        return self.buffer.numel() * self.buffer.element_size()

    def step(self, batches: dict[str, list[torch.Tensor]]) -> None:
        """One optimizer step over ``{task: [micro-batch inputs]}`` (the model returns the loss)."""
        world = dist.get_world_size()
        total = sum(len(b) for b in batches.values())
        for name, micro_batches in batches.items():
            k = self.tasks.index(name)
            self.model.zero_grad(set_to_none=True)
            for tokens in micro_batches:
                (self.model(tokens) / total).backward()
            row, offset = self.buffer[k], 0
            for _, p in self.params:
                n = p.numel()
                row[offset : offset + n].copy_(p.grad.reshape(-1) if p.grad is not None else 0.0)
                offset += n
            self.comm.all_reduce(row)
            row.div_(world)
        active = [t in batches for t in self.tasks]
        orders = draw_task_orders(len(self.tasks), step_generator(self.seed, self.step_count)).tolist()
        update, self.targets, _ = dense_gradvac_groups(
            list(self.buffer), self.slices, self.targets, mode=self.mode, beta=self.beta,
            active=active, orders=orders,
        )  # fmt: skip
        offset = 0
        for _, p in self.params:
            p.grad = update[offset : offset + p.numel()].view_as(p).to(p.dtype)
            offset += p.numel()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.step_count += 1
