"""What a training run writes to DeepSpeed's monitor, and the rank-0 progress around evaluation.

DeepSpeed's monitor (``tensorboard``, ``csv_monitor``, ``wandb`` or ``comet`` in the DeepSpeed
config) receives ``(tag, value, x)`` events. Every series of a run uses one x-axis: DeepSpeed's
``global_samples``, which DeepSpeed advances by ``train_batch_size`` at each optimizer step and
logs its learning rate against (``Train/Samples/lr``); GradVac's cosines and fire rates
(``gradvac/...``, see :mod:`gradvac_ds.stats`) use it too. The run adds

    Train/Samples/loss/<task>   token-weighted training loss of the task since the last write
    Valid/Samples/loss/<task>   validation loss (and ``.../mean`` over tasks) at each evaluation
    Test/Samples/bleu/<pair>    sacreBLEU of the test split at the end (and ``.../average``)
    Test/Samples/chrf/<pair>    chrF likewise

Each mode writes into its own monitor folder: :func:`per_mode_monitors` points TensorBoard and the
CSV monitor at ``<output_path or run_dir/monitor>/<job_name>/<mode>``, so TensorBoard shows the
modes of a run as runs side by side. A resumed mode continues its CSV files without the rows of
the steps it redoes (:func:`resume_csv_monitor`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from deepspeed import comm as dist
from tqdm import tqdm

from gradvac_ds.stats import Event, tag_part

FOLDER_MONITORS = ("tensorboard", "csv_monitor")
"""DeepSpeed monitors that write under ``output_path/job_name``."""

DEFAULT_JOB_NAME = "DeepSpeedJobName"
"""DeepSpeed's job_name when none is configured."""

T = TypeVar("T")


def per_mode_monitors(ds_config: Mapping[str, Any], run_dir: str | Path, mode: str) -> dict[str, Any]:
    """A copy of ``ds_config`` whose enabled TensorBoard/CSV monitors write to a folder of ``mode``.

    ``output_path`` defaults to ``<run_dir>/monitor`` (DeepSpeed's default is the working directory);
    ``job_name`` becomes ``<mode>``, or ``<job_name>/<mode>`` when the config names a job. Without
    this, the modes of one run would append to the same CSV files.
    """
    out = dict(ds_config)
    for name in FOLDER_MONITORS:
        section = out.get(name)
        if not isinstance(section, Mapping) or not section.get("enabled", False):
            continue
        job = section.get("job_name") or DEFAULT_JOB_NAME
        out[name] = {
            **section,
            "output_path": str(section.get("output_path") or Path(run_dir) / "monitor"),
            "job_name": mode if job == DEFAULT_JOB_NAME else f"{job}/{mode}",
        }
    return out


def monitor_enabled(engine: Any) -> bool:
    """Whether the engine's DeepSpeed monitor writes anywhere (the same answer on every rank)."""
    monitor = getattr(engine, "monitor", None)
    return bool(monitor is not None and monitor.enabled)


def resume_csv_monitor(engine: Any, resumed_x: int) -> None:
    """Continue the CSV files of ``engine``'s CSV monitor (rank 0) at a resume from ``resumed_x``.

    The interrupted run wrote rows after its last checkpoint, at x > ``resumed_x``; the resumed run
    writes those steps again, so such rows are dropped, and so are ``Test_*`` rows at x >=
    ``resumed_x`` (test scores are written once, after the last step, and a resumed finished mode
    scores again). DeepSpeed's monitor writes a file's header row at its first event in a process;
    the kept files are registered with it, so the header is not written again mid-file.
    """
    monitor = getattr(getattr(engine, "monitor", None), "csv_monitor", None)
    if monitor is None or not monitor.enabled or monitor.log_dir is None:
        return
    for path in sorted(Path(monitor.log_dir).glob("*.csv")):
        with path.open(newline="") as handle:
            lines = list(csv.reader(handle))
        if not lines:
            continue
        header, *rows = lines
        last = resumed_x - 1 if path.stem.startswith("Test_") else resumed_x
        kept = [row for row in rows if row and row[0] != "step" and int(float(row[0])) <= last]
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *kept])
        if path.stem not in monitor.filenames:
            monitor.filenames.append(path.stem)


class TrainLossMeter:
    """Token-weighted training loss per task, summed over data-parallel ranks, since the last write.

    ``add(task, loss, tokens)`` takes a micro-batch's mean per-token loss and its target-token
    count. :meth:`events` (a collective over ``group``: every rank calls it at the same step)
    all-reduces the [K, 2] float64 tensor of (sum of loss * tokens, tokens) and returns, per task
    that ran since the last call, ``Train/Samples/loss/<task> = sum(loss * tokens) / sum(tokens)``.
    """

    def __init__(self, tasks: Sequence[str], device: torch.device, group: Any = None) -> None:
        self.tasks = list(tasks)
        self.index = {task: k for k, task in enumerate(self.tasks)}
        self.device, self.group = device, group
        self.sums = torch.zeros(len(self.tasks), 2, dtype=torch.float64)

    def add(self, task: str, loss: float, tokens: int) -> None:
        """Accumulate one micro-batch of ``task``."""
        self.sums[self.index[task]] += torch.tensor([loss * tokens, tokens], dtype=torch.float64)

    def events(self, x: int) -> list[Event]:
        """Reduce over the group, reset, and return the loss events at ``x`` (collective)."""
        total = self.sums.to(self.device, copy=True)
        dist.all_reduce(total, group=self.group)
        total = total.cpu()
        self.sums.zero_()
        return [
            (f"Train/Samples/loss/{tag_part(task)}", float(total[k, 0] / total[k, 1]), x)
            for k, task in enumerate(self.tasks)
            if total[k, 1] > 0
        ]


def validation_events(losses: Mapping[str, float], x: int) -> list[Event]:
    """``Valid/Samples/loss/<task>`` per task and ``Valid/Samples/loss/mean`` (mean over tasks)."""
    events = [(f"Valid/Samples/loss/{tag_part(task)}", float(loss), x) for task, loss in losses.items()]
    if losses:
        events.append(("Valid/Samples/loss/mean", sum(losses.values()) / len(losses), x))
    return events


def score_events(scores: Mapping[str, Mapping[str, Any]], x: int) -> list[Event]:
    """``Test/Samples/{bleu,chrf}/<pair>`` per pair and ``.../average`` (mean over pairs)."""
    events: list[Event] = []
    for metric in ("bleu", "chrf"):
        values = {pair: float(s[metric]) for pair, s in scores.items()}
        events += [(f"Test/Samples/{metric}/{tag_part(pair)}", v, x) for pair, v in values.items()]
        if values:
            events.append((f"Test/Samples/{metric}/average", sum(values.values()) / len(values), x))
    return events


def _is_main() -> bool:
    return dist.get_rank() == 0


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """``items`` with a transient tqdm bar on rank 0 (validation, decoding); silent elsewhere."""
    yield from tqdm(items, desc=desc, total=total, disable=not _is_main(), leave=False, dynamic_ncols=True)


@contextmanager
def announce(what: str) -> Iterator[None]:
    """Rank 0 prints ``what ...`` before the block and how long it took after it (checkpoint writes)."""
    start = time.perf_counter()
    if _is_main():
        tqdm.write(f"{what} ...")
    yield
    if _is_main():
        tqdm.write(f"{what}: done in {time.perf_counter() - start:.1f} s")
