"""What the benchmarks share: the engine seams they plug in (a phase timer, a counting ``Comm``),
DeepSpeed's own traffic counter, the re-launch on several gloo ranks, and table printing.

Nothing here patches a module global: phases come from the engine's ``StepObserver``, the engine's
collectives from its ``Comm``, and DeepSpeed's gradient reductions from DeepSpeed's ``comms_logger``.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from gradvac_ds.comm import Comm, StepObserver


class PhaseTimer(StepObserver):
    """Wall seconds per engine phase while ``active``; inactive it costs one attribute test.

    With ``synchronize`` the accelerator is synchronised around each phase
    (``deepspeed.get_accelerator().synchronize()``), so that asynchronous device work is charged to
    the phase that launched it; that serialises the device, so timed rounds leave it off.
    """

    def __init__(self, synchronize: bool = False) -> None:
        self.active = False
        self.synchronize = synchronize
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if not self.active:
            yield
            return
        sync = _synchronizer() if self.synchronize else None
        if sync:
            sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if sync:
                sync()
            self.seconds[name] += time.perf_counter() - start

    def take(self) -> dict[str, float]:
        """The seconds accumulated per phase since the last call."""
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


def _synchronizer():
    import deepspeed

    return deepspeed.get_accelerator().synchronize


class CountingComm(Comm):
    """The engine's collectives, each recorded as (name, payload bytes) while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.calls: list[tuple[str, int]] = []

    def all_reduce(self, tensor: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if self.active:
            self.calls.append(("all_reduce", tensor.numel() * tensor.element_size()))
        super().all_reduce(tensor, *args, **kwargs)

    def all_gather_into_tensor(self, output: torch.Tensor, tensor: torch.Tensor, group: Any = None) -> None:
        if self.active:
            self.calls.append(("all_gather_into_tensor", output.numel() * output.element_size()))
        super().all_gather_into_tensor(output, tensor, group=group)

    def take(self) -> list[tuple[str, int]]:
        out, self.calls = self.calls, []
        return out


@contextmanager
def deepspeed_traffic() -> Iterator[dict[str, int]]:
    """Count the payload bytes of every ``deepspeed.comm`` collective issued inside the block (the
    gradient reductions of DeepSpeed and the engine's Gram all-reduce alike), by DeepSpeed's own
    ``comms_logger``; the dict it yields is filled with ``{op name: bytes}`` on exit."""
    from deepspeed import comm as dist

    totals: dict[str, int] = {}
    dist.comms_logger.reset_data()
    dist.configure(enabled=True, prof_all=True, verbose=False)
    try:
        yield totals
    finally:
        dist.configure(enabled=False, prof_all=False)
        for op, sizes in dist.comms_logger.comms_dict.items():
            totals[op] = sum(int(size) * int(entry[0]) for size, entry in sizes.items())
        dist.comms_logger.reset_data()


def peak_rss_bytes() -> int:
    """This process's peak resident set size (``VmHWM`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_kind() -> str:
    """What :func:`peak_memory_bytes` measures on this accelerator: the host RSS on CPU ranks, the
    accelerator's allocated memory elsewhere (where the model, gradients and buffers live)."""
    import deepspeed

    name = deepspeed.get_accelerator().device_name()
    return "host RSS" if name == "cpu" else f"{name} memory allocated"


def reset_peak_memory() -> bool:
    """Reset the peak of :func:`peak_memory_bytes`; False where the kernel refuses (CPU only)."""
    import deepspeed

    accelerator = deepspeed.get_accelerator()
    if accelerator.device_name() == "cpu":
        return reset_peak_rss()
    accelerator.reset_peak_memory_stats()
    return True


def peak_memory_bytes() -> int:
    """Peak of :func:`memory_kind` since the last reset: ``VmHWM`` on CPU, the accelerator's
    ``max_memory_allocated`` elsewhere."""
    import deepspeed

    accelerator = deepspeed.get_accelerator()
    if accelerator.device_name() == "cpu":
        return peak_rss_bytes()
    return int(accelerator.max_memory_allocated())


def current_memory_bytes() -> int:
    """Current value of :func:`memory_kind`: ``VmRSS`` on CPU, ``memory_allocated`` elsewhere."""
    import deepspeed

    accelerator = deepspeed.get_accelerator()
    if accelerator.device_name() != "cpu":
        return int(accelerator.memory_allocated())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmRSS line")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_workers(script: str, argv: list[str], world: int, name: str) -> dict[str, Any] | None:
    """Re-run ``script`` with ``--worker --out FILE`` on ``world`` local gloo ranks (one thread each,
    ``DS_ACCELERATOR=cpu`` unless set); their logs go to stderr. Returns rank 0's JSON report."""
    import json

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.setdefault("DS_ACCELERATOR", "cpu")
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix=f"{name}_") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            str(Path(script).resolve()), *argv, "--worker", "--out", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr)
        if proc.returncode != 0 or not out.exists():
            print(f"{name}: workers failed (rc={proc.returncode})", file=sys.stderr)
            return None
        return json.loads(out.read_text())


def copy_bandwidth(
    device: Any = "cpu",
    numel: int = 32 * 2**20,
    repeats: int = 7,
    barrier: Callable[[], None] | None = None,
) -> float:
    """Bytes per second of ``dst.copy_(src)`` on ``numel`` fp32 elements (the median of
    ``repeats``, with this process's threads): a kernel that reads n bytes and writes n bytes moves
    them at this rate, the memory-bandwidth yardstick of the engine's copy-like phases.

    ``barrier`` (e.g. ``dist.barrier``) is called before every repeat, so that all ranks of a
    node copy at the same time, as they run the engine's phases: ranks share the node's memory
    bandwidth (on this 2-core box two concurrent copies get about 10 GB/s each, one alone 17), and
    the best of unsynchronised repeats would measure a rank alone."""
    src = torch.ones(numel, device=device)
    dst = torch.empty_like(src)
    synchronize = _synchronizer()
    times = []
    for _ in range(repeats):
        if barrier is not None:
            barrier()
        synchronize()
        start = time.perf_counter()
        dst.copy_(src)
        synchronize()
        times.append(time.perf_counter() - start)
    return src.numel() * src.element_size() / statistics.median(times)


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the median of ``values`` and its distribution-free confidence interval.

    With the n values sorted, ``[x_(j), x_(n+1-j)]`` (1-based) covers the true median with
    probability ``1 - 2 P(B <= j - 1)``, B ~ Binomial(n, 1/2), whatever the distribution; j is the
    largest rank whose coverage is at least ``confidence``. Below 6 values no such interval exists
    at 95 %: the whole range is returned.
    """
    ordered = sorted(values)
    n = len(ordered)
    j, below = 1, 1 / 2**n  # below = P(B <= j - 1)
    while j + 1 <= (n + 1) // 2 and 1 - 2 * (below + math.comb(n, j) / 2**n) >= confidence:
        below += math.comb(n, j) / 2**n
        j += 1
    return statistics.median(ordered), ordered[j - 1], ordered[n - j]


def print_table(title: str, columns: list[tuple[str, int, str]], rows: list[list[Any]]) -> None:
    """One table: ``columns`` are (header, width, format spec); each row holds one value per column."""
    print(title)
    head = " ".join(f"{name:>{width}}" for name, width, _ in columns)
    print(head)
    print("-" * len(head))
    for row in rows:
        cells = []
        for value, (_, width, spec) in zip(row, columns, strict=True):
            cells.append("-".rjust(width) if value is None else f"{value:>{width}{spec}}")
        print(" ".join(cells))
    print()
