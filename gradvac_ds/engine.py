"""GradVacEngine: per-task capture of ZeRO's reduced gradient -> Gram -> all-reduce -> solve -> write.

A step of K' tasks on a rank that holds the flat local gradient buffers b (ZeRO partitions, or full
gradients at stage 0):

1. For each task k of the step, its micro-batches run forward/backward; the last backward is an
   accumulation boundary, so DeepSpeed reduces (and averages over data-parallel ranks) as it always
   does. The reduced local buffer is copied into row k of a task buffer ``X_b[K', numel_b]`` and
   DeepSpeed's copy is cleared for the next task. The buffers keep min(K, micro-batches per step)
   rows: only the tasks present in a step need one.
2. Local Gram slices ``G[l] += c_f X_b[:, f] X_b[:, f]^T`` over the buffer fragments f of group l,
   where ``c_f = 1 / (ranks holding the same elements)`` (:mod:`gradvac_ds.layout`). One
   all-reduce over all data x tensor-parallel ranks yields the exact Gram of the full task
   gradients on every rank. The same all-reduce carries a signature of the step's task sequence
   (names and micro-batch counts, in order): ranks that ran different sequences would have had
   DeepSpeed reduce one task's gradient with another's, so the step is refused before anything is
   written.
3. Every rank runs the identical solver (same task orders from ``step_generator(seed, step)``), and
   writes ``sum_k w[l, k] X_b[k, f]`` where the optimizer reads the gradient.
4. DeepSpeed's own ``step()`` runs unchanged: overflow check, clipping, optimizer, all-gather. The
   GradVac state (EMA targets, step count) is committed only when DeepSpeed applied the step. A
   non-finite Gram (a task's gradient overflowed on some rank; every rank sees the same sum) makes
   the step a no-op on every rank: nothing is written back, the optimizer does not step, and
   DeepSpeed counts a skipped step as it does for its own overflow.

The per-micro-batch loss scaling is DeepSpeed's (``loss / gradient_accumulation_steps``), so with
``mode: sum`` the update equals plain DeepSpeed on the same micro-batches; the number of backward
calls per step must therefore equal ``gradient_accumulation_steps``.

Requirement on the training loop: every rank runs the same tasks, in the same order, with the same
micro-batch counts in each step (the application's ``StepSchedule`` guarantees it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deepspeed
import torch
from deepspeed.comm import ReduceOp

from gradvac_ds.algorithm import SolveResult
from gradvac_ds.comm import Comm, StepObserver
from gradvac_ds.config import DISCOVER, GradVacConfig, split_config
from gradvac_ds.errors import RankDivergenceError, TaskProtocolError
from gradvac_ds.gram import SIGNATURE_SLOTS, Segment, accumulate_gram, combine_segments, merge_segments
from gradvac_ds.grouping import ParameterGrouping, group_parameters
from gradvac_ds.layout import ParallelLayout, check_megatron_tensor_parallel
from gradvac_ds.state import GradVacState, StepPlan
from gradvac_ds.stats import monitor_events
from gradvac_ds.zero import GradientAdapter, full_numel, make_adapter, skip_step

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "gradvac"
NON_FINITE = "non-finite task gradient"
DEEPSPEED_SKIPPED = "DeepSpeed skipped the step (gradient overflow)"
StepCallback = Callable[["StepOutcome"], None]


@dataclass(frozen=True)
class StepOutcome:
    """What one GradVac step did.

    step:        the GradVac step index the step ran at (the count of applied steps before it)
    task_names:  all known task names: the index space of ``tasks`` and of the task axes of ``result``
    tasks:       indices into ``task_names`` of the step's tasks, in the order they ran
    group_names: the parameter groups (the first axis of ``result``)
    result:      the solver's output, or None when a task's gradient was not finite
    skip_reason: None when the optimizer step was applied, else why it was skipped
                 (:data:`NON_FINITE` or :data:`DEEPSPEED_SKIPPED`)
    """

    step: int
    task_names: tuple[str, ...]
    tasks: tuple[int, ...]
    group_names: tuple[str, ...]
    result: SolveResult | None
    skip_reason: str | None = None

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None

    @property
    def cosine(self) -> torch.Tensor:
        """[L, K, K] cosines of the original task gradients; all NaN when the Gram was not finite,
        so that logging code needs no special case for skipped steps."""
        if self.result is not None:
            return self.result.cosine
        k = len(self.task_names)
        return torch.full((len(self.group_names), k, k), float("nan"), dtype=torch.float64)


@dataclass
class _RunningTask:
    index: int
    micro_batches: int
    done: int = 0


_FORWARDED = (
    "module", "optimizer", "lr_scheduler", "monitor", "config", "state_dict", "load_state_dict",
    "module_state_dict", "eval", "train", "get_lr", "global_steps", "global_samples", "skipped_steps",
    "was_step_applied", "dp_world_size", "gradient_accumulation_steps", "train_batch_size",
    "train_micro_batch_size_per_gpu", "zero_optimization_stage", "fp16_enabled", "bfloat16_enabled",
    "get_global_grad_norm", "local_rank", "global_rank", "device", "mpu",
)  # fmt: skip
"""DeepSpeedEngine attributes a GradVacEngine forwards unchanged (so ``engine.config`` and
``engine.state_dict()`` mean what they mean in DeepSpeed). Everything else: ``engine.ds_engine``."""


class GradVacEngine:
    """Wraps a DeepSpeed engine; build one with :func:`initialize`. In the training loop::

        for task, batches in step_batches.items():
            with engine.task(task, micro_batches=len(batches)):
                for batch in batches:
                    engine.backward(engine(**batch))
        outcome = engine.step()

    ``comm`` and ``observer`` are the seams for counting collectives and timing phases
    (:mod:`gradvac_ds.comm`); ``layout`` says which ranks share which gradient elements
    (:mod:`gradvac_ds.layout`).
    """

    def __init__(
        self,
        ds_engine: deepspeed.DeepSpeedEngine,
        config: GradVacConfig,
        *,
        layout: ParallelLayout | None = None,
        comm: Comm | None = None,
        observer: StepObserver | None = None,
    ) -> None:
        self.ds_engine = ds_engine
        self.gradvac_config = config
        self._weighting = config.weighting
        self.comm = comm or Comm()
        self.observer = observer or StepObserver()
        self.layout = layout or ParallelLayout.from_mpu(getattr(ds_engine, "mpu", None))
        dp_size = int(ds_engine.dp_world_size)
        self.layout.check(self.comm, dp_size)
        self.adapter: GradientAdapter = make_adapter(ds_engine, self.comm)
        self.grouping: ParameterGrouping = group_parameters(
            ds_engine.module.named_parameters(), config.granularity, numel_of=full_numel
        )
        discover = config.tasks == DISCOVER
        self.state = GradVacState(
            self.grouping.group_names, () if discover else config.tasks, discover=discover
        )
        self.segments = [self._segments(layout, dp_size) for layout in self.adapter.layouts]
        self._device = torch.device(deepspeed.get_accelerator().current_device_name())
        # Task buffers, Gram slices and the combination live with the reduced gradient: host memory
        # under optimizer offload (gradvac_ds.zero.offload), else the accelerator.
        self._buffer_device = self.adapter.device or self._device
        self._buffers: list[torch.Tensor] = []
        self._step_tasks: list[tuple[int, int]] = []
        self._running: _RunningTask | None = None
        self._callbacks: list[StepCallback] = []
        # A step holds at most gradient_accumulation_steps tasks (each runs >= 1 micro-batch), so
        # with sampled tasks the buffers need min(K, micro-batches per step) rows, not K.
        self._ensure_rows(min(self.state.num_tasks or 1, ds_engine.gradient_accumulation_steps()))

    # ------------------------------------------------------------------ layout
    def _segments(self, buffer_layout, dp_size: int) -> list[Segment]:
        segments = []
        for frag in buffer_layout.fragments:
            holders = self.layout.holders(
                frag.param, partitioned=self.adapter.partitioned, comm=self.comm, dp_size=dp_size
            )
            group = self.grouping.group_of[frag.name]
            segments.append(Segment(frag.dst, frag.dst + frag.n, group, 1.0 / holders))
        return merge_segments(segments)

    def _ensure_rows(self, rows: int) -> None:
        """Grow the task buffers to at least ``rows`` rows, keeping the rows captured so far."""
        if self._buffers and self._buffers[0].shape[0] >= rows:
            return
        grown = []
        for index, buffer_layout in enumerate(self.adapter.layouts):
            buf = torch.zeros(
                rows,
                buffer_layout.numel,
                dtype=self.gradvac_config.buffer_torch_dtype,
                device=self._buffer_device,
            )
            if self._buffers:
                kept = self._buffers[index].shape[0]
                buf[:kept].copy_(self._buffers[index])
            grown.append(buf)
        self._buffers = grown

    @property
    def task_buffer_bytes(self) -> int:
        """Bytes held by the per-task gradient buffers on this rank."""
        return sum(b.numel() * b.element_size() for b in self._buffers)

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
        if any(index == k for k, _ in self._step_tasks):
            raise TaskProtocolError(
                f"task {name!r} ran twice in step {self.state.step}; group its micro-batches"
            )
        self._running = _RunningTask(index, micro_batches)
        try:
            self.adapter.begin_task()
            yield
            if self._running.done != micro_batches:
                raise TaskProtocolError(
                    f"task {name!r} declared {micro_batches} micro-batches "
                    f"but ran {self._running.done} backward calls"
                )
            with self.observer.phase("capture"):
                row = len(self._step_tasks)
                self._ensure_rows(row + 1)
                for i, buf in enumerate(self._buffers):
                    self.adapter.read_into(i, buf[row])
                self.adapter.clear()
            self._step_tasks.append((index, micro_batches))
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
        self.ds_engine.set_gradient_accumulation_boundary(running.done == running.micro_batches)
        return self.ds_engine.backward(loss, retain_graph=retain_graph)

    def step(self) -> StepOutcome:
        """GradVac on the captured tasks, then DeepSpeed's optimizer step."""
        if self._running is not None:
            raise TaskProtocolError("step() called inside a task")
        if not self._step_tasks:
            raise TaskProtocolError("step() called before any task ran")
        expected = self.ds_engine.gradient_accumulation_steps()
        micro_batches = sum(m for _, m in self._step_tasks)
        if micro_batches != expected:
            raise TaskProtocolError(
                f"step {self.state.step} ran {micro_batches} micro-batches but the DeepSpeed config has "
                f"gradient_accumulation_steps={expected}; set it to the micro-batches per step"
            )
        rows = [k for k, _ in self._step_tasks]
        gram = self._global_gram(rows)
        active = torch.zeros(self.state.num_tasks, dtype=torch.bool)
        active[rows] = True
        cfg = self.gradvac_config
        with self.observer.phase("solve"):
            plan = self.state.plan(gram, active, weighting=self._weighting, seed=cfg.seed)
        interval = cfg.consistency_check_interval
        if interval and self.state.step % interval == 0:
            with self.observer.phase("agreement"):
                self._check_agreement(plan, rows)
        skip_reason = self._apply(plan, rows)
        if skip_reason is None:
            self.state.commit(plan)
        else:
            logger.warning("GradVac step %d skipped: %s", plan.step, skip_reason)
        outcome = StepOutcome(
            plan.step,
            tuple(self.state.task_names),
            tuple(rows),
            self.grouping.group_names,
            plan.result,
            skip_reason,
        )
        self._step_tasks = []
        self._write_monitor(outcome)
        for callback in self._callbacks:
            callback(outcome)
        return outcome

    def _apply(self, plan: StepPlan, rows: list[int]) -> str | None:
        """Write the combined gradient and run DeepSpeed's step; return why it was skipped, if it was."""
        if plan.result is None:
            self.adapter.clear()
            skip_step(self.ds_engine)
            return NON_FINITE
        weights = plan.result.weights[:, rows]
        with self.observer.phase("combine"):
            for i, (buf, segments) in enumerate(zip(self._buffers, self.segments, strict=True)):
                # The combination may land in a task row: a free one, or the last task's (read
                # before it is overwritten, block by block: combine_segments).
                spare = buf[min(len(rows), buf.shape[0] - 1)]
                out = self.adapter.output_buffer(i, self._buffer_device, spare)
                combine_segments(buf[: len(rows)], segments, weights, out)
                self.adapter.write(i, out)
        self.ds_engine.set_gradient_accumulation_boundary(True)
        with self.observer.phase("optimizer"):
            self.ds_engine.step()
        return None if self.ds_engine.was_step_applied() else DEEPSPEED_SKIPPED

    def _write_monitor(self, outcome: StepOutcome) -> None:
        """Per-pair cosines and fire rates to DeepSpeed's monitor (TensorBoard/CSV/W&B), at the
        configured interval, for applied steps, against DeepSpeed's ``global_samples`` (the x-axis of
        its own learning-rate series); the monitor itself writes on rank 0 only."""
        interval, monitor = self.gradvac_config.log_interval, getattr(self.ds_engine, "monitor", None)
        if not interval or outcome.skipped or monitor is None or not monitor.enabled:
            return
        if outcome.step % interval == 0:
            monitor.write_events(
                monitor_events(
                    outcome.result, outcome.task_names, outcome.group_names, self.ds_engine.global_samples
                )
            )

    def add_step_callback(self, callback: StepCallback) -> None:
        """Call ``callback(outcome)`` after every step, skipped ones included (check ``skipped``)."""
        self._callbacks.append(callback)

    # ------------------------------------------------------------------ collectives
    def _global_gram(self, rows: list[int]) -> torch.Tensor:
        """G[L, K, K] of the full task gradients: local slices, then ONE all-reduce over all ranks,
        which also carries the step's task-sequence signature (checked here)."""
        count, num_groups, num_tasks = len(rows), self.grouping.num_groups, self.state.num_tasks
        with self.observer.phase("gram"):
            local = torch.zeros(num_groups, count, count, dtype=torch.float64, device=self._buffer_device)
            for buf, segments in zip(self._buffers, self.segments, strict=True):
                accumulate_gram(local, buf[:count], segments, self.gradvac_config.gram_torch_dtype)
            size = num_groups * num_tasks * num_tasks
            packed = torch.zeros(size + SIGNATURE_SLOTS, dtype=torch.float64, device=self._device)
            gram = packed[:size].view(num_groups, num_tasks, num_tasks)
            index = torch.tensor(rows, device=self._device)
            gram[:, index.unsqueeze(1), index.unsqueeze(0)] = local.to(self._device)
            digests = self._sequence_digests()
            packed[size:] = torch.tensor([*digests, *(d * d for d in digests)], dtype=torch.float64)
        with self.observer.phase("all_reduce"):
            self.comm.all_reduce(packed, group=self.layout.gram)
        packed = packed.cpu()
        self._check_sequences(packed[size:])
        return packed[:size].view(num_groups, num_tasks, num_tasks)

    def _sequence_digests(self) -> tuple[float, float]:
        """Two independent digests in [1, 2) of the step's (task name, micro-batches) sequence."""
        text = "\x1f".join(f"{self.state.task_names[k]}\x1e{m}" for k, m in self._step_tasks)
        raw = hashlib.blake2b(text.encode(), digest_size=16).digest()
        return tuple(1.0 + int.from_bytes(raw[i : i + 7], "little") / 2**56 for i in (0, 8))

    def _check_sequences(self, summed: torch.Tensor) -> None:
        """All N ranks sent the same digest d iff N * sum(d^2) == (sum d)^2 (equality case of
        Cauchy-Schwarz); the spread of the digests is that difference over N^2."""
        ranks = self.comm.world_size(self.layout.gram)
        first, second = summed[:2], summed[2:]
        spread = (ranks * second - first * first) / ranks**2
        if bool((spread.abs() > 1e-12).any()):
            mine = [(self.state.task_names[k], m) for k, m in self._step_tasks]
            every = self.comm.all_gather_object(mine, group=self.layout.gram)
            listing = "; ".join(f"rank {r}: {seq}" for r, seq in enumerate(every))
            raise RankDivergenceError(
                f"GradVac step {self.state.step}: ranks ran different task sequences ({listing}). Every "
                "rank must run the same tasks in the same order with the same micro-batch counts; "
                "DeepSpeed has reduced one task's gradient with another's, so the step is not applied"
            )

    def _check_agreement(self, plan: StepPlan, rows: list[int]) -> None:
        """Compare a digest of the step's task orders and weights across ranks (one small
        all-reduce): ranks with other seeds or software would corrupt the model silently."""
        weights = (
            plan.result.weights[:, rows]
            if plan.result is not None
            else torch.zeros(self.grouping.num_groups, len(rows), dtype=torch.float64)
        )
        probe = torch.Generator().manual_seed(12345)
        digest = torch.stack(
            [
                (
                    plan.orders.double() * torch.rand(plan.orders.shape, generator=probe, dtype=torch.float64)
                ).sum(),
                (weights * torch.rand(weights.shape, generator=probe, dtype=torch.float64)).sum(),
            ]
        )
        both = torch.cat([digest, -digest]).to(self._device)
        self.comm.all_reduce(both, op=ReduceOp.MAX, group=self.layout.gram)
        high, low = both[:2].cpu(), -both[2:].cpu()
        if not torch.allclose(high, low, rtol=1e-12, atol=0.0):
            what = [name for name, bad in zip(("task orders", "weights"), high != low, strict=True) if bad]
            raise RankDivergenceError(
                f"GradVac step {self.state.step}: ranks disagree on the {', '.join(what)} of the step "
                "(different gradvac.seed or software per rank?)"
            )

    # ------------------------------------------------------------------ checkpoints
    def gradvac_state_dict(self) -> dict[str, Any]:
        """The GradVac state (EMA targets, task names, step), saved in checkpoints' client state."""
        return self.state.state_dict()

    def load_gradvac_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)

    def save_checkpoint(
        self, save_dir: str | Path, tag: Any = None, client_state: dict | None = None, **kwargs
    ):
        """DeepSpeed's checkpoint, with the GradVac state in its client state."""
        client_state = dict(client_state or {})
        client_state[CHECKPOINT_KEY] = self.gradvac_state_dict()
        return self.ds_engine.save_checkpoint(str(save_dir), tag=tag, client_state=client_state, **kwargs)

    def load_checkpoint(self, load_dir: str | Path, tag: Any = None, **kwargs):
        """DeepSpeed's load_checkpoint; restores the GradVac state saved with it."""
        path, client_state = self.ds_engine.load_checkpoint(str(load_dir), tag=tag, **kwargs)
        if path is not None:
            if CHECKPOINT_KEY not in client_state:
                raise KeyError(f"checkpoint {path} has no GradVac state; was it saved by GradVacEngine?")
            self.load_gradvac_state_dict(client_state.pop(CHECKPOINT_KEY))
        return path, client_state

    def __call__(self, *args, **kwargs):
        return self.ds_engine(*args, **kwargs)


def _forward(name: str) -> property:
    return property(lambda self: getattr(self.ds_engine, name), doc=f"``DeepSpeedEngine.{name}``")


for _name in _FORWARDED:
    setattr(GradVacEngine, _name, _forward(_name))


def initialize(
    *,
    config: dict[str, Any] | str | Path,
    layout: ParallelLayout | None = None,
    comm: Comm | None = None,
    observer: StepObserver | None = None,
    **kwargs,
):
    """``deepspeed.initialize`` plus GradVac: the one public entry point.

    ``config`` is a DeepSpeed config (dict or JSON path) with a ``"gradvac"`` section; the section
    and the DeepSpeed fields GradVac relies on are validated before any process group starts.
    ``layout`` defaults to the ``mpu``'s tensor-parallel group (T = 1 without one); ``comm`` and
    ``observer`` are the seams of :mod:`gradvac_ds.comm`. All other keyword arguments go to
    ``deepspeed.initialize``. Returns ``(GradVacEngine, optimizer, dataloader, lr_scheduler)``.
    """
    ds_config, gradvac = split_config(config)
    if layout is None and kwargs.get("mpu") is None:
        check_megatron_tensor_parallel(1)
    engine, optimizer, dataloader, scheduler = deepspeed.initialize(config=ds_config, **kwargs)
    wrapped = GradVacEngine(engine, gradvac, layout=layout, comm=comm, observer=observer)
    return wrapped, optimizer, dataloader, scheduler
