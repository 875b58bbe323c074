"""GradVacEngine: per-task capture of ZeRO's reduced gradient -> Gram -> all-reduce -> solve -> write.

A step of K' tasks on a rank that holds the flat local gradient buffers b (ZeRO partitions, or full
gradients at stage 0):

1. For each task k of the step, its micro-batches run forward/backward; the last backward is an
   accumulation boundary, so DeepSpeed reduces (and averages over data-parallel ranks) as it always
   does. The reduced local buffer is copied into row k of a task buffer ``X_b[K', numel_b]`` and
   DeepSpeed's copy is cleared for the next task. The buffers keep min(K, micro-batches per step)
   rows: only the tasks present in a step need one.
2. Local Gram slices ``G[l] += c_f X_b[:, f] X_b[:, f]^T`` over the buffer fragments f of group l,
   where ``c_f = 1 / (number of ranks holding the same elements)``: 1 for a ZeRO partition of a
   tensor-parallel-sharded parameter, 1/T for a TP-replicated one (LayerNorm), and an extra 1/N at
   stage 0, where every data-parallel rank holds the full gradient. One all-reduce of ``G[L, K, K]``
   over all ranks then yields the exact Gram of the full task gradients on every rank.
3. Every rank runs the identical solver (same task orders from ``step_generator(seed, step)``), and
   writes ``sum_k w[l, k] X_b[k, f]`` where the optimizer reads the gradient.
4. DeepSpeed's own ``step()`` runs unchanged: overflow check, clipping, optimizer, all-gather.

The per-micro-batch loss scaling is DeepSpeed's (``loss / gradient_accumulation_steps``), so with
``mode: sum`` the update equals plain DeepSpeed on the same micro-batches; the number of backward
calls per step must therefore equal ``gradient_accumulation_steps``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deepspeed
import torch
from deepspeed import comm as dist
from deepspeed.runtime.utils import is_model_parallel_parameter

from gradvac_ds.algorithm import SolveResult
from gradvac_ds.config import DISCOVER, GradVacConfig
from gradvac_ds.gram import Segment, accumulate_gram, combine_segments, merge_segments
from gradvac_ds.grouping import ParameterGrouping, group_parameters
from gradvac_ds.state import GradVacState
from gradvac_ds.stats import monitor_events
from gradvac_ds.zero import GradientAdapter, make_adapter

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "gradvac"
StepCallback = Callable[["StepOutcome"], None]


class RankDivergenceError(RuntimeError):
    """Data-parallel ranks computed different task orders or weights: the model would be corrupted."""


class TaskProtocolError(RuntimeError):
    """The training loop broke the task/step protocol (nesting, repeats, micro-batch counts)."""


@dataclass
class StepOutcome:
    """What one GradVac step did.

    step:        GradVac step index (0-based)
    tasks:       the task names of the step, in the order they ran
    result:      the solver's output over all known tasks, or None when the Gram was not finite
    task_names:  all known task names (index space of ``result``)
    group_names: the parameter groups (index space of the first axis of ``result``)
    """

    step: int
    tasks: list[str]
    result: SolveResult | None
    task_names: list[str]
    group_names: tuple[str, ...]

    @property
    def skipped(self) -> bool:
        return self.result is None


@dataclass
class _RunningTask:
    index: int
    micro_batches: int
    done: int = 0


class GradVacEngine:
    """Wraps a DeepSpeed engine; attribute access falls through to it.

    Use :func:`initialize` to build one. In the training loop::

        for task, batches in step_batches.items():
            with engine.task(task, micro_batches=len(batches)):
                for batch in batches:
                    engine.backward(engine(**batch))
        engine.step()
    """

    def __init__(
        self,
        engine: deepspeed.DeepSpeedEngine,
        config: GradVacConfig,
        *,
        tensor_parallel_group: Any = None,
        gram_group: Any = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.adapter: GradientAdapter = make_adapter(engine)
        if tensor_parallel_group is None and getattr(engine, "mpu", None) is not None:
            tensor_parallel_group = engine.mpu.get_tensor_model_parallel_group()
        self.tensor_parallel_group = tensor_parallel_group
        self.gram_group = gram_group
        tp_size = dist.get_world_size(group=tensor_parallel_group) if tensor_parallel_group is not None else 1
        _check_megatron_tensor_parallel(tp_size)
        dp_size = int(engine.dp_world_size)
        gram_world = dist.get_world_size(group=gram_group)
        if gram_world != dp_size * tp_size:
            raise RuntimeError(
                f"the Gram all-reduce group has {gram_world} ranks, expected data-parallel {dp_size} x "
                f"tensor-parallel {tp_size}; pipeline or other model parallelism is not supported"
            )
        self.grouping: ParameterGrouping = group_parameters(
            engine.module.named_parameters(), config.granularity
        )
        discover = config.tasks == DISCOVER
        self.state = GradVacState(
            self.grouping.group_names, () if discover else config.tasks, discover=discover
        )
        self.segments = [self._segments(layout, tp_size, dp_size) for layout in self.adapter.layouts]
        self.device = torch.device(deepspeed.get_accelerator().current_device_name())
        self._buffers: list[torch.Tensor] = []
        self._step_tasks: list[int] = []
        self._step_micro_batches = 0
        self._running: _RunningTask | None = None
        self._callbacks: list[StepCallback] = []
        self.last_outcome: StepOutcome | None = None
        # A step holds at most gradient_accumulation_steps tasks (each runs >= 1 micro-batch), so
        # with sampled tasks the buffers need min(K, micro-batches per step) rows, not K.
        self._ensure_rows(min(self.state.num_tasks or 1, engine.gradient_accumulation_steps()))

    # ------------------------------------------------------------------ layout
    def _segments(self, layout, tp_size: int, dp_size: int) -> list[Segment]:
        segments = []
        for frag in layout.fragments:
            replicas = 1 if is_model_parallel_parameter(frag.param) else tp_size
            if not self.adapter.partitioned:
                replicas *= dp_size
            group = self.grouping.group_of[frag.name]
            segments.append(Segment(frag.dst, frag.dst + frag.n, group, 1.0 / replicas))
        return merge_segments(segments)

    def _ensure_rows(self, rows: int) -> None:
        """Grow the task buffers to at least ``rows`` rows, keeping the rows captured so far."""
        if self._buffers and self._buffers[0].shape[0] >= rows:
            return
        grown = []
        for index, layout in enumerate(self.adapter.layouts):
            buf = torch.zeros(rows, layout.numel, dtype=self.config.buffer_torch_dtype, device=self.device)
            if self._buffers:
                kept = self._buffers[index].shape[0]
                buf[:kept].copy_(self._buffers[index])
            grown.append(buf)
        self._buffers = grown

    @property
    def task_buffer_bytes(self) -> int:
        """Bytes held by the per-task gradient buffers on this rank."""
        return sum(b.numel() * b.element_size() for b in self._buffers)

    def describe_groups(self) -> str:
        return self.grouping.describe()

    # ------------------------------------------------------------------ training loop
    @contextmanager
    def task(self, name: str, micro_batches: int = 1) -> Iterator[None]:
        """Run one task's ``micro_batches`` backward calls; capture its reduced gradient on exit."""
        if self._running is not None:
            raise TaskProtocolError(
                f"task {name!r} started inside task {self.state.task_names[self._running.index]!r}"
            )
        if micro_batches < 1:
            raise TaskProtocolError(f"task {name!r}: micro_batches must be >= 1, got {micro_batches}")
        index = self.state.task_index(name)
        if index in self._step_tasks:
            raise TaskProtocolError(
                f"task {name!r} ran twice in step {self.state.step}; group its micro-batches"
            )
        self._running = _RunningTask(index, micro_batches)
        try:
            yield
            if self._running.done != micro_batches:
                raise TaskProtocolError(
                    f"task {name!r} declared {micro_batches} micro-batches "
                    f"but ran {self._running.done} backward calls"
                )
            row = len(self._step_tasks)
            self._ensure_rows(row + 1)
            for i, buf in enumerate(self._buffers):
                self.adapter.read_into(i, buf[row])
            self.adapter.clear()
            self._step_tasks.append(index)
            self._step_micro_batches += micro_batches
        finally:
            self._running = None

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> torch.Tensor:
        """DeepSpeed's backward; the task's last micro-batch is an accumulation boundary."""
        running = self._running
        if running is None:
            raise TaskProtocolError("backward() must run inside `with engine.task(name, micro_batches=M):`")
        if running.done >= running.micro_batches:
            raise TaskProtocolError(
                f"more backward calls than the {running.micro_batches} declared micro-batches"
            )
        running.done += 1
        self.engine.set_gradient_accumulation_boundary(running.done == running.micro_batches)
        return self.engine.backward(loss, retain_graph=retain_graph)

    def step(self) -> StepOutcome:
        """GradVac on the captured tasks, then DeepSpeed's optimizer step."""
        if self._running is not None:
            raise TaskProtocolError("step() called inside a task")
        if not self._step_tasks:
            raise TaskProtocolError("step() called before any task ran")
        expected = self.engine.gradient_accumulation_steps()
        if self._step_micro_batches != expected:
            raise TaskProtocolError(
                f"step {self.state.step} ran {self._step_micro_batches} micro-batches but the DeepSpeed "
                f"config has gradient_accumulation_steps={expected}; set it to the micro-batches per step"
            )
        rows = torch.tensor(self._step_tasks)
        num_tasks, count = self.state.num_tasks, len(self._step_tasks)
        gram = self._global_gram(rows, num_tasks)
        active = torch.zeros(num_tasks, dtype=torch.bool)
        active[rows] = True
        cfg = self.config
        orders, result = self.state.solve(gram, active, mode=cfg.mode, beta=cfg.beta, seed=cfg.seed)
        if result is not None:
            weights = result.weights[:, rows]
        else:
            logger.warning(
                "GradVac step %d: non-finite task gradient; passing the plain sum to DeepSpeed",
                self.state.step,
            )
            weights = torch.ones(self.grouping.num_groups, count, dtype=torch.float64)
        interval = self.config.consistency_check_interval
        if interval and self.state.step % interval == 0:
            self._check_agreement(orders, weights, rows)
        for i, (buf, segments) in enumerate(zip(self._buffers, self.segments, strict=True)):
            out = self.adapter.output_buffer(i, self.device)
            combine_segments(buf[:count], segments, weights, out)
            self.adapter.write(i, out)
        self.engine.set_gradient_accumulation_boundary(True)
        self.engine.step()
        if result is not None:
            self.state.targets = result.targets
        outcome = StepOutcome(
            self.state.step,
            [self.state.task_names[k] for k in self._step_tasks],
            result,
            list(self.state.task_names),
            self.grouping.group_names,
        )
        self.state.step += 1
        self._step_tasks, self._step_micro_batches = [], 0
        self.last_outcome = outcome
        self._write_monitor(outcome)
        for callback in self._callbacks:
            callback(outcome)
        return outcome

    def _write_monitor(self, outcome: StepOutcome) -> None:
        """Per-pair cosines and fire rates to DeepSpeed's monitor (TensorBoard/CSV/W&B), at the
        configured interval, against DeepSpeed's ``global_samples`` (the x-axis of its own
        learning-rate series); the monitor itself writes on rank 0 only."""
        interval, monitor = self.config.log_interval, getattr(self.engine, "monitor", None)
        if not interval or outcome.result is None or monitor is None or not monitor.enabled:
            return
        if outcome.step % interval == 0:
            monitor.write_events(
                monitor_events(
                    outcome.result, outcome.task_names, outcome.group_names, self.engine.global_samples
                )
            )

    def add_step_callback(self, callback: StepCallback) -> None:
        """Call ``callback(outcome)`` after every step (statistics logging, monitors)."""
        self._callbacks.append(callback)

    # ------------------------------------------------------------------ collectives
    def _global_gram(self, rows: torch.Tensor, num_tasks: int) -> torch.Tensor:
        """G[L, K, K] of the full task gradients: local slices, then ONE all-reduce over all ranks."""
        count = rows.numel()
        local = torch.zeros(self.grouping.num_groups, count, count, dtype=torch.float64, device=self.device)
        for buf, segments in zip(self._buffers, self.segments, strict=True):
            accumulate_gram(local, buf[:count], segments)
        gram = torch.zeros(
            self.grouping.num_groups, num_tasks, num_tasks, dtype=torch.float64, device=self.device
        )
        index = rows.to(self.device)
        gram[:, index.unsqueeze(1), index.unsqueeze(0)] = local
        dist.all_reduce(gram, group=self.gram_group)
        return gram.cpu()

    def _check_agreement(self, orders: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor) -> None:
        """Compare a digest of the task set, orders and weights across ranks (one small all-reduce)."""
        probe = torch.Generator().manual_seed(12345)
        digest = torch.stack(
            [
                (rows.double() * torch.rand(rows.numel(), generator=probe, dtype=torch.float64)).sum(),
                (orders.double() * torch.rand(orders.shape, generator=probe, dtype=torch.float64)).sum(),
                (weights * torch.rand(weights.shape, generator=probe, dtype=torch.float64)).sum(),
            ]
        )
        both = torch.cat([digest, -digest]).to(self.device)
        dist.all_reduce(both, op=dist.ReduceOp.MAX, group=self.gram_group)
        high, low = both[:3].cpu(), -both[3:].cpu()
        if not torch.allclose(high, low, rtol=1e-12, atol=0.0):
            what = [
                name
                for name, bad in zip(("tasks", "task orders", "weights"), high != low, strict=True)
                if bad
            ]
            raise RankDivergenceError(
                f"GradVac step {self.state.step}: ranks disagree on the {', '.join(what)} of the step "
                "(different gradvac.seed, task schedule or software per rank?)"
            )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return self.state.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)

    def save_checkpoint(
        self, save_dir: str | Path, tag: Any = None, client_state: dict | None = None, **kwargs
    ):
        """DeepSpeed's checkpoint, with the GradVac state in its client state."""
        client_state = dict(client_state or {})
        client_state[CHECKPOINT_KEY] = self.state_dict()
        return self.engine.save_checkpoint(str(save_dir), tag=tag, client_state=client_state, **kwargs)

    def load_checkpoint(self, load_dir: str | Path, tag: Any = None, **kwargs):
        """DeepSpeed's load_checkpoint; restores the GradVac state saved with it."""
        path, client_state = self.engine.load_checkpoint(str(load_dir), tag=tag, **kwargs)
        if path is not None:
            if CHECKPOINT_KEY not in client_state:
                raise KeyError(f"checkpoint {path} has no GradVac state; was it saved by GradVacEngine?")
            self.load_state_dict(client_state.pop(CHECKPOINT_KEY))
        return path, client_state

    # ------------------------------------------------------------------ pass-through
    def __call__(self, *args, **kwargs):
        return self.engine(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


def _check_megatron_tensor_parallel(tp_size: int) -> None:
    """A megatron model sharded over TP > 1 needs the TP group, or its shards would be summed as
    if they were data-parallel replicas; refuse instead of computing a wrong Gram."""
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        megatron_tp = parallel_state.get_tensor_model_parallel_world_size()
        if megatron_tp != tp_size:
            raise RuntimeError(
                f"megatron parallel_state has tensor-parallel size {megatron_tp} but the engine sees "
                f"{tp_size}: pass mpu=gradvac_ds.training.megatron.MegatronMPU() to gradvac_ds.initialize"
            )


def split_config(config: dict[str, Any] | str | Path) -> tuple[dict[str, Any], GradVacConfig]:
    """The DeepSpeed config without its ``"gradvac"`` section, and that section validated."""
    if not isinstance(config, dict):
        config = json.loads(Path(config).read_text())
    gradvac = GradVacConfig.from_deepspeed_config(config)
    ds_config = copy.deepcopy({k: v for k, v in config.items() if k != "gradvac"})
    return ds_config, gradvac


def initialize(*, config: dict[str, Any] | str | Path, tensor_parallel_group: Any = None, **kwargs):
    """``deepspeed.initialize`` plus GradVac: the one public entry point.

    ``config`` is a DeepSpeed config (dict or JSON path) with a ``"gradvac"`` section; the section
    is validated before any process group starts. All other keyword arguments go to
    ``deepspeed.initialize``. Returns ``(GradVacEngine, optimizer, dataloader, lr_scheduler)``.
    """
    ds_config, gradvac = split_config(config)
    mpu = kwargs.get("mpu")
    if mpu is None and tensor_parallel_group is None:
        _check_megatron_tensor_parallel(1)
    engine, optimizer, dataloader, scheduler = deepspeed.initialize(config=ds_config, **kwargs)
    return (
        GradVacEngine(engine, gradvac, tensor_parallel_group=tensor_parallel_group),
        optimizer,
        dataloader,
        scheduler,
    )
