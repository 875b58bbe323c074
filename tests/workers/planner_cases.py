"""Planner-validation measurements under torchrun (gloo, DS_ACCELERATOR=cpu); one JSON line per case.

Every case trains a few steps of GradVac on the real DeepSpeed engine (fp32) and records, per rank
(rank 0 writes the largest over ranks):

- the peak bytes of the GradVac task buffers (``GradVacEngine.task_buffer_bytes``, sampled after
  initialisation and after every step), the elements of the rank's gradient partition (the
  adapter's buffer layouts), the GradVac group count L and the trainable parameters Ψ of the rank;
- the engine's own collectives, through the ``comm`` seam (:class:`CountingComm`): bytes, calls and
  the size of the group of each all-reduce;
- DeepSpeed's gradient reductions through DeepSpeed's own ``comms_logger`` (enabled in the config,
  profiling every reduction op): the bytes of every reduction collective that passed through
  ``deepspeed.comm`` in the step, minus the engine's own (which pass through it too).

It records the run (model, sizes, N, T, stage, K, M) next to the measurements; the test computes
the planner's figures from that description alone. Cases:

- ``layered_K*_M*``: a small torch module with two optimizer parameter groups at ZeRO-2, T = 1
  (the planner is given the layout, :func:`gradvac_ds.planning.layout_of`, and L);
- ``tp{T}_{kind}_s{stage}``: a megatron-core translation model of gradvac_ds.training.modeling at
  tensor-parallel size T (1 on one or two processes; 2 on two, or four as T = 2 x N = 2), which the
  planner builds itself on the meta device from the same config.

    torchrun --nproc_per_node 4 tests/workers/planner_cases.py --out results.jsonl
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable

import deepspeed
import torch
from deepspeed import comm as dist
from harness import run_cases
from megatron.core import parallel_state
from torch import nn

from gradvac_ds.comm import Comm
from gradvac_ds.engine import GradVacEngine, split_config
from gradvac_ds.planning import layout_of
from gradvac_ds.training.build import leave_together
from gradvac_ds.training.megatron import MegatronMPU, init_model_parallel
from gradvac_ds.training.modeling import build_model
from gradvac_ds.zero import full_numel

STEPS = 2
REDUCTIONS = ("all_reduce", "all_reduce_coalesced", "reduce", "reduce_scatter", "reduce_scatter_tensor")
"""``deepspeed.comm`` ops that reduce (the comms logger's record names: each op's own name)."""
COMMS_LOGGER = {
    "enabled": True,
    "prof_all": False,
    "prof_ops": list(REDUCTIONS),
    "verbose": False,
    "debug": False,
}
"""DeepSpeed's comms logger, profiling the reductions. Not ``prof_all``: DeepSpeed 0.19.8's logger
calls ``exit(0)`` on ops its bandwidth formula does not know, such as ``all_gather_object``."""

# layered cases: (K tasks, M micro-batches per task), ZeRO-2, T = 1
LAYERED = [(2, 1), (4, 1), (8, 1), (16, 1), (4, 2)]
BATCH, DIM_IN, DIM, DIM_OUT, LAYERS = 4, 11, 37, 5, 3

# megatron cases: name -> (T, kind, ZeRO stage, K, M)
MEGATRON = {
    "tp1_encdec_s2": (1, "encdec", 2, 3, 1),
    "tp2_encdec_s2": (2, "encdec", 2, 3, 1),
    "tp2_decoder_s1": (2, "decoder", 1, 3, 2),
    "tp2_encdec_s3": (2, "encdec", 3, 3, 1),
    "tp2_decoder_s0": (2, "decoder", 0, 2, 1),
}
VOCAB, SEQ, TOKEN_BATCH, SEED = 60, 8, 2, 7
MODEL = {
    "name": "planner_test",
    "hidden_size": 32,
    "ffn_hidden_size": 64,
    "num_attention_heads": 2,
    "encoder_layers": 2,
    "decoder_layers": 1,
    "decoder_only_layers": 3,
    "max_sequence_length": 16,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "make_vocab_size_divisible_by": 8,
}
"""A very small model config (gradvac_ds.training.modeling fields); the test plans from it too."""


class CountingComm(Comm):
    """The engine's collectives, each recorded as (name, bytes, ranks in the group)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def all_reduce(self, tensor, op=dist.ReduceOp.SUM, group=None):
        self.calls.append(("all_reduce", tensor.numel() * tensor.element_size(), self.world_size(group)))
        super().all_reduce(tensor, op=op, group=group)

    def all_gather_into_tensor(self, output, tensor, group=None):
        size = tensor.numel() * tensor.element_size()
        self.calls.append(("all_gather_into_tensor", size, self.world_size(group)))
        super().all_gather_into_tensor(output, tensor, group=group)

    def bytes(self, names: tuple[str, ...]) -> int:
        return sum(size for name, size, _ in self.calls if name in names)


def logged_bytes() -> dict[str, int]:
    """Bytes per op name that deepspeed.comm's comms logger recorded since its last reset."""
    raw = dist.comms_logger.get_raw_data()
    return {name: sum(size * record[0] for size, record in sizes.items()) for name, sizes in raw.items()}


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


def ds_config(tasks: list[str], micro_batches: int, stage: int, batch: int) -> dict:
    return {
        "train_micro_batch_size_per_gpu": batch,
        "gradient_accumulation_steps": len(tasks) * micro_batches,
        "steps_per_print": 10**9,
        "zero_allow_untested_optimizer": True,
        "zero_optimization": {"stage": stage, "reduce_bucket_size": 512},
        "comms_logger": COMMS_LOGGER,
        "gradvac": {
            "mode": "gradvac",
            "beta": 0.01,
            "granularity": "layer",
            "tasks": tasks,
            "consistency_check_interval": 0,
        },
    }


Batch = Callable[[int, int, int], tuple[torch.Tensor, torch.Tensor]]
"""(step, task, micro-batch) -> the micro-batch's inputs on this rank."""


def measure(
    gv: GradVacEngine, counter: CountingComm, names: list[str], micro_batches: int, batch: Batch
) -> dict:
    """Run STEPS steps; the per-step and peak figures of the largest rank."""
    peak, per_step = gv.task_buffer_bytes, []
    for step in range(STEPS):
        counter.calls.clear()
        dist.comms_logger.reset_data()
        for k, name in enumerate(names):
            with gv.task(name, micro_batches=micro_batches):
                for mb in range(micro_batches):
                    gv.backward(gv(*batch(step, k, mb)))
        gv.step()
        peak = max(peak, gv.task_buffer_bytes)
        logged = logged_bytes()
        ours = counter.bytes(("all_reduce",))
        per_step.append(
            {
                "engine_calls": [list(call) for call in counter.calls],
                "engine_all_reduce_bytes": ours,
                "logged": logged,
                "deepspeed_reduction_bytes": sum(logged.get(op, 0) for op in REDUCTIONS) - ours,
            }
        )
    params = [p for p in gv.ds_engine.module.parameters() if p.requires_grad]
    measured = {
        "task_buffer_bytes": peak,
        "local_grad_numel": sum(buffer.numel for buffer in gv.adapter.layouts),
        "params_per_tp_rank": sum(full_numel(p) for p in params),  # ZeRO-3 partitions p.data away
        "groups": gv.grouping.num_groups,
        "gram_bytes_per_step": max(s["engine_all_reduce_bytes"] for s in per_step),
        "gram_calls_per_step": max(len(s["engine_calls"]) for s in per_step),
        "gram_ranks": max(call[2] for s in per_step for call in s["engine_calls"]),
        "grad_reduction_bytes_per_step": max(s["deepspeed_reduction_bytes"] for s in per_step),
    }
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, measured)
    return {
        "per_step_rank0": per_step,
        "measured": {key: max(m[key] for m in gathered) for key in measured},
        "measured_by_rank": gathered,
    }


def layered_case(tasks: int, micro_batches: int) -> dict:
    names = [f"t{k:02d}-en" for k in range(tasks)]
    config, gv_config = split_config(ds_config(names, micro_batches, 2, BATCH))
    model = Layered()
    groups = [
        {"params": [p for p in model.parameters() if p.dim() > 1], "weight_decay": 0.01},
        {"params": [p for p in model.parameters() if p.dim() <= 1], "weight_decay": 0.0},
    ]
    layout = layout_of(groups)  # before DeepSpeed replaces the groups' tensors by its flat partitions
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=torch.optim.AdamW(groups, lr=1e-3), config=config
    )
    counter = CountingComm()
    gv = GradVacEngine(engine, gv_config, comm=counter)
    rank = dist.get_rank()

    def batch(step: int, k: int, mb: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(1_000_000 * step + 1000 * k + 10 * rank + mb)
        x = torch.randn(BATCH, DIM_IN, generator=gen) * (1 + k % 3)
        return x, torch.randn(BATCH, DIM_OUT, generator=gen) + k % 2

    run = {"tasks": tasks, "micro_batches_per_task": micro_batches, "dp": dist.get_world_size(), "tp": 1}
    run |= {
        "zero_stage": 2,
        "params": sum(p.numel() for p in model.parameters()),
        "layout": layout,
    }
    return {"run": run, **measure(gv, counter, names, micro_batches, batch)}


def token_batch(step: int, task: int, dp_rank: int, mb: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (src, tgt) token ids: pad 0, bos 1, eos 2, the target-language tag 3 + task."""
    gen = torch.Generator().manual_seed(1_000_003 * step + 10_007 * task + 101 * dp_rank + mb)
    src = torch.zeros(TOKEN_BATCH, SEQ, dtype=torch.long)
    tgt = torch.zeros(TOKEN_BATCH, SEQ, dtype=torch.long)
    for row in range(TOKEN_BATCH):
        n_src, n_tgt = (int(v) for v in torch.randint(2, SEQ - 2, (2,), generator=gen))
        src[row, 0] = 3 + task
        src[row, 1 : 1 + n_src] = torch.randint(8, VOCAB, (n_src,), generator=gen)
        src[row, 1 + n_src] = 2
        tgt[row, 0] = 1
        tgt[row, 1 : 1 + n_tgt] = torch.randint(8, VOCAB, (n_tgt,), generator=gen)
        tgt[row, 1 + n_tgt] = 2
    return src, tgt


def megatron_case(tp: int, kind: str, stage: int, tasks: int, micro_batches: int) -> dict:
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    init_model_parallel(tp)
    names = [f"t{k}-en" for k in range(tasks)]
    model = build_model(MODEL, VOCAB, kind, seed=SEED)
    config, gv_config = split_config(ds_config(names, micro_batches, stage, TOKEN_BATCH))
    engine, *_ = deepspeed.initialize(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
        config=config,
        mpu=MegatronMPU(),
    )
    counter = CountingComm()
    gv = GradVacEngine(engine, gv_config, comm=counter)
    dp_rank = parallel_state.get_data_parallel_rank()

    def batch(step: int, k: int, mb: int) -> tuple[torch.Tensor, torch.Tensor]:
        return token_batch(step, k, dp_rank, mb)

    run = {"tasks": tasks, "micro_batches_per_task": micro_batches, "zero_stage": stage, "tp": tp}
    run |= {"dp": parallel_state.get_data_parallel_world_size(), "model": MODEL, "vocab": VOCAB, "kind": kind}
    return {"run": run, **measure(gv, counter, names, micro_batches, batch)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all that fit)")
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo")
    world = dist.get_world_size()
    cases: dict[str, Callable[[], dict]] = {
        f"layered_K{k}_M{m}": functools.partial(layered_case, k, m) for k, m in LAYERED
    }
    for name, (tp, *rest) in sorted(MEGATRON.items()):  # T = 1 first, then T = 2
        if world % tp == 0 and world // tp <= 2:
            cases[name] = functools.partial(megatron_case, tp, *rest)
    if args.cases:
        cases = {name: case for name, case in cases.items() if name in args.cases.split(",")}
    run_cases(cases, args.out)
    leave_together()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
