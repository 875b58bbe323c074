"""Clean shutdown: SIGTERM/SIGINT, or the loss of the deepspeed runner, stop a run at a step boundary.

A signal handler only records the signal. At each step boundary the trainer calls
:meth:`StopSignals.agreed`: one all-reduce (MAX) of the recorded signal number over all ranks, so
a signal delivered to one rank stops every rank after the same step. The trainer then writes a final
checkpoint and exits with 128 + the signal number. Repeated signals are recorded once; the hard stop
stays with the launchers, which SIGKILL a worker 30 s after their SIGTERM (DeepSpeed's
``launch.py`` and torchrun alike).

The deepspeed runner (``deepspeed ...``, the README's command) installs no signal handler on a single
node: SIGTERM to it ends only the runner, and its child ``deepspeed.launcher.launch`` with the
workers would train on. So when a worker's parent is that ``launch.py``, a watcher thread checks
once a second that ``launch.py`` still has the parent it started with; when it has been re-parented
(the runner is gone) the worker acts as on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

import deepspeed
import psutil
import torch
from deepspeed import comm as dist

from gradvac_ds.training.errors import SkippedStepsError

SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEEPSPEED_LAUNCH = "deepspeed.launcher.launch"
WATCH_INTERVAL_S = 1.0


class StopSignals:
    """Context manager: while inside, SIGTERM/SIGINT (and a lost deepspeed runner) are recorded as
    a stop request instead of ending the process."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.why = ""
        self._reported = False
        self._previous: dict[int, object] = {}
        self._done = threading.Event()
        self._watcher: threading.Thread | None = None

    def __enter__(self) -> StopSignals:
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        launch = _deepspeed_launch_parent()
        if launch is not None:
            self._watcher = threading.Thread(
                target=self._watch, args=(launch, launch.ppid()), name="runner-watch", daemon=True
            )
            self._watcher.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the watcher and restore the previous handlers, unless a stop was requested: then the
        process is about to exit with 128 + that signal, and a launcher's follow-up SIGTERM must not
        change its status."""
        self._done.set()
        if self.received is None:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def request(self, signum: int, why: str) -> None:
        """Record a stop request (the first one wins). Nothing is printed here: a signal handler that
        writes to stderr while the interrupted code is writing there fails (a reentrant call)."""
        if self.received is None:
            self.why = why
            self.received = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum, f"received {signal.Signals(signum).name}")

    def _watch(self, launch: psutil.Process, runner_pid: int) -> None:
        while not self._done.wait(WATCH_INTERVAL_S):
            try:
                gone = launch.ppid() != runner_pid
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                self.request(signal.SIGTERM, f"the deepspeed runner (pid {runner_pid}) has exited")
                return

    def agreed(self) -> int | None:
        """Collective: the largest signal number recorded on any rank, or None when none was."""
        if self.received is not None and not self._reported:
            self._reported = True
            print(f"rank {dist.get_rank()}: {self.why}; stopping at this step boundary", file=sys.stderr)
        device = torch.device(deepspeed.get_accelerator().current_device_name())
        flag = torch.tensor([self.received or 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None


def _deepspeed_launch_parent() -> psutil.Process | None:
    """This process's parent when it is DeepSpeed's per-node ``launch.py``, else None."""
    try:
        parent = psutil.Process(os.getppid())
        return parent if DEEPSPEED_LAUNCH in " ".join(parent.cmdline()) else None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class SkipStreak:
    """Counts optimizer steps skipped in a row; ``limit`` in a row (0: never) end the run.

    Every rank sees the same outcomes (GradVac's Gram and DeepSpeed's overflow flag are reduced over
    all ranks), so every rank raises after the same step.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def update(self, step: int, skipped: bool, reason: str | None) -> None:
        """Record the outcome of 1-based step ``step``.

        Raises:
            SkippedStepsError: when this was the ``limit``-th skipped step in a row.
        """
        self.count = self.count + 1 if skipped else 0
        if self.limit and self.count >= self.limit:
            why = f" (last: {reason})" if reason else ""
            raise SkippedStepsError(
                f"steps {step - self.count + 1}..{step}: {self.count} optimizer steps in a row were skipped"
                f"{why}, training.max_consecutive_skipped_steps = {self.limit}. The weights or the batches "
                "are not finite any more: resume from an earlier checkpoint (lower training.lr?), or raise "
                "the limit"
            )
