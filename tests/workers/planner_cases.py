"""Planner-validation cases under torchrun (gloo, DS_ACCELERATOR=cpu); one JSON line per case on rank 0.

Each case builds a small layered model with several optimizer parameter groups, wraps it with the
real DeepSpeed ZeRO-2 engine (fp32) and GradVacEngine for K tasks (M micro-batches per task), runs
a few steps, and measures on every rank:

- the peak bytes of the GradVac task buffers (``GradVacEngine.task_buffer_bytes``, sampled after
  initialisation and after every step);
- the bytes handed to collectives per step: the engine's own (the Gram all-reduce) through a
  counting proxy on ``gradvac_ds.engine.dist``, and DeepSpeed ZeRO-2's gradient reductions through
  one on ``deepspeed.runtime.zero.stage_1_and_2.dist``.

Next to them it records the planner's figures for the same run,
``gradvac_ds.planning.plan(P, K, dp=N, zero_stage=2, precision="fp32", groups=L, layout=...)``
with the model's exact optimizer-group layout and GradVac group count.

    torchrun --nproc_per_node 2 tests/workers/planner_cases.py --out results.jsonl
"""

from __future__ import annotations

import argparse
import functools
import os

import deepspeed
import deepspeed.runtime.zero.stage_1_and_2 as ds_stage12
import torch
from deepspeed import comm as dist
from harness import run_cases
from torch import nn

import gradvac_ds.engine as gv_engine
from gradvac_ds.engine import GradVacEngine, split_config
from gradvac_ds.planning import layout_of, plan

# (K tasks, M micro-batches per task); one launch per world size runs all of them
CASES = [(2, 1), (4, 1), (8, 1), (16, 1), (4, 2)]
STEPS = 2
BATCH, DIM_IN, DIM, DIM_OUT, LAYERS = 4, 11, 37, 5, 3
REDUCTIONS = ("all_reduce", "reduce", "reduce_scatter", "reduce_scatter_tensor", "reduce_scatter_fn")


class Layered(nn.Module):
    """An input projection, ``LAYERS`` layers (Linear + LayerNorm) and a head: LAYERS + 2 groups at
    granularity ``layer``. Odd sizes so that DeepSpeed's 2·N padding of the flat groups shows."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(DIM_IN, DIM)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(DIM, DIM), nn.LayerNorm(DIM)) for _ in range(LAYERS)
        )
        self.head = nn.Linear(DIM, DIM_OUT)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return ((self.head(x) - y) ** 2).mean()


def optimizer_groups(model: nn.Module) -> list[dict]:
    """Two optimizer groups as usual in NMT: matrices with weight decay, vectors without."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    return [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]


class Counting:
    """Forwards to deepspeed.comm; adds the bytes of every reduction collective to ``bytes``."""

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0

    def reset(self) -> None:
        self.calls = self.bytes = 0

    def __getattr__(self, name):
        target = getattr(dist, name)
        if name not in REDUCTIONS:
            return target

        def counted(tensor, *args, **kwargs):
            self.calls += 1
            self.bytes += tensor.numel() * tensor.element_size()
            return target(tensor, *args, **kwargs)

        return counted


def case(tasks: int, micro_batches: int) -> dict:
    names = [f"t{k:02d}-en" for k in range(tasks)]
    config = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": tasks * micro_batches,
        "steps_per_print": 10**9,
        "zero_allow_untested_optimizer": True,
        "zero_optimization": {"stage": 2, "reduce_bucket_size": 512},
        "gradvac": {
            "mode": "gradvac",
            "beta": 0.01,
            "granularity": "layer",
            "tasks": names,
            "consistency_check_interval": 0,
        },
    }
    ds_config, gv_config = split_config(config)
    model = Layered()
    groups = optimizer_groups(model)
    layout = layout_of(groups)
    params = sum(p.numel() for p in model.parameters())
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=torch.optim.AdamW(groups, lr=1e-3), config=ds_config
    )
    gram_comm, grad_comm = Counting(), Counting()
    gv_engine.dist, ds_stage12.dist = gram_comm, grad_comm
    try:
        gv = GradVacEngine(engine, gv_config)
        peak = gv.task_buffer_bytes
        rank, per_step = dist.get_rank(), []
        for step in range(STEPS):
            gram_comm.reset()
            grad_comm.reset()
            for k, name in enumerate(names):
                with gv.task(name, micro_batches=micro_batches):
                    for mb in range(micro_batches):
                        gen = torch.Generator().manual_seed(1_000_000 * step + 1000 * k + 10 * rank + mb)
                        x = torch.randn(BATCH, DIM_IN, generator=gen) * (1 + k % 3)
                        y = torch.randn(BATCH, DIM_OUT, generator=gen) + k % 2
                        gv.backward(gv(x, y))
            gv.step()
            peak = max(peak, gv.task_buffer_bytes)
            per_step.append(
                {
                    "gram_calls": gram_comm.calls,
                    "gram_bytes": gram_comm.bytes,
                    "grad_calls": grad_comm.calls,
                    "grad_bytes": grad_comm.bytes,
                }
            )
    finally:
        gv_engine.dist, ds_stage12.dist = dist, dist
    planned = plan(
        params,
        tasks,
        dp=dist.get_world_size(),
        zero_stage=2,
        precision="fp32",
        buffer_dtype="fp32",
        optimizer="adamw",
        groups=gv.grouping.num_groups,
        micro_batches_per_task=micro_batches,
        layout=layout,
    )
    ours = planned.gradvac_ds
    # every rank's figures, so that the test sees the largest (ranks own unequal partitions only
    # through padding, which the planner counts on every rank)
    measured = {
        "task_buffer_bytes": peak,
        "local_grad_numel": sum(buffer.numel for buffer in gv.adapter.layouts),
        "gram_bytes_per_step": max(s["gram_bytes"] for s in per_step),
        "gram_calls_per_step": max(s["gram_calls"] for s in per_step),
        "grad_reduction_bytes_per_step": max(s["grad_bytes"] for s in per_step),
    }
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, measured)
    return {
        "tasks": tasks,
        "micro_batches_per_task": micro_batches,
        "params": params,
        "groups": gv.grouping.num_groups,
        "layout": [list(g) for g in layout],
        "per_step": per_step,
        "measured": {key: max(m[key] for m in gathered) for key in measured},
        "measured_by_rank": gathered,
        "planned": {
            "task_buffer_bytes": ours.memory.task_buffers,
            "local_grad_numel": planned.local_grad_numel,
            "gram_bytes_per_step": ours.communication.gram_dp_allreduce_payload_bytes,
            "extra_payload_bytes": ours.communication.extra_payload_bytes,
            "grad_reduction_bytes_per_step": ours.communication.grad_reduction_payload_bytes,
            "grad_reductions_per_step": ours.communication.grad_reductions_per_step,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo")
    cases = {f"K{k}_M{m}": functools.partial(case, k, m) for k, m in CASES}
    run_cases(cases, args.out)


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
