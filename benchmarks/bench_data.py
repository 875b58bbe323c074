"""Data path at corpus scale: gradvac-prepare throughput and memory, and per-rank memory of training.

1. A synthetic corpus (English paired with 4 languages of 2 families, many-to-one) of S and 10·S
   training pairs in all (S >= 200k by default) is written in the fairseq layout.
2. ``gradvac-prepare`` runs on each (its own process, 2 encoding workers); the benchmark reports
   wall time, pairs per second and the peak RSS of the whole process tree (main + workers).
3. The training data path starts on each prepared directory as 2 ranks (2 processes, as under the
   launcher): ``open_prepared``, the rank's step schedule, then 50 micro-batches. Each rank
   reports its **peak private memory** (``RssAnon`` of ``/proc/self/status``, sampled every
   2 ms by a thread from before the data is opened to the 50th micro-batch: what each rank holds
   on its own, the part that grows with a per-rank index), its peak total RSS (``ru_maxrss``,
   which also counts the page-cache pages of the memory-mapped files the rank touched: shared by
   the ranks of a node and reclaimable), and the seconds from opening the data to the first
   micro-batch (the first ``batch()`` call of a task returning; the first whole step is reported
   apart, import time too).
4. Baseline, same run, small corpus only: the in-memory path that gradvac-prepare replaces (every
   rank reads the whole corpus into Python lists and encodes it, then the same schedule runs on
   those lists).

Last line: one JSON object with ``rank_anon_peak_growth_ratio`` = large / small per-rank peak
private memory (the bar: <= 1.15), ``rank_anon_peak_bytes_per_added_pair`` = the growth of that
peak over the pairs the large corpus adds (a figure that does not depend on S: a sampler that held
an int32 length and an int64 permutation entry per pair on every rank would show about 12 here, 1.2
GB per rank at 100M pairs; one that holds a bucket per task shows about 0), the same ratio of the
total peak RSS, and the ratios of the prepared path to the in-memory baseline on the small corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LANGUAGES = 4
MICRO_BATCHES = 50


def _data_settings(corpus: Path, prepared: Path, cache: Path) -> dict:
    return {
        "source": "fairseq", "path": str(corpus), "prepared": str(prepared), "cache_dir": str(cache),
        "splits": ["train", "valid"], "max_positions": 64, "encode_workers": 2,
        "vocab": {"vocab_size": 2000, "max_sentences": 100_000},
        "batching": {"max_tokens": 2048, "max_sentences": 64, "micro_batches_per_step": 4},
    }  # fmt: skip


def _run_config(path: Path, data: dict) -> Path:
    """A run config (the demo's, with this data section) for gradvac-prepare."""
    import yaml

    from gradvac_ds.training.config_file import read_config

    values = read_config(REPO / "configs" / "demo.yaml")  # with its extends chain, as the trainer reads it
    values["data"] = data
    path.write_text(yaml.safe_dump(values))
    return path


def _write_corpus(directory: Path, pairs: int) -> None:
    from gradvac_ds.training.data import SyntheticConfig, generate_synthetic, write_fairseq_dir

    config = SyntheticConfig(
        num_families=2, languages_per_family=2, train_sentences=pairs // LANGUAGES, valid_sentences=200,
        test_sentences=0, lexicon_size=3000, seed=11,
    )  # fmt: skip
    write_fairseq_dir(generate_synthetic(config).corpus, directory)


def _tree_rss_peak(proc: subprocess.Popen) -> tuple[int, float]:
    """Wait for ``proc``; returns (exit code, peak summed RSS of it and its descendants in MiB)."""
    import psutil

    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            total = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.1)
    return proc.returncode, peak / 2**20


def _prepare(config_path: Path) -> tuple[float, float]:
    """(seconds, peak tree RSS MiB) of one gradvac-prepare run."""
    cmd = [sys.executable, "-m", "gradvac_ds.training.data.prepare", "--quiet", "--config", str(config_path)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()))
    reader.start()
    code, peak = _tree_rss_peak(proc)
    reader.join()
    if code:
        raise SystemExit(f"gradvac-prepare failed:\n{stderr[0][-4000:]}")
    return time.perf_counter() - start, peak


def _ranks(mode: str, data: dict) -> list[dict]:
    """Run the data path as 2 rank processes at once; their JSON reports."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--rank", str(rank), "--mode", mode, "--data", json.dumps(data)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    rows = []
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        if proc.returncode:
            raise SystemExit(f"rank process failed:\n{err[-4000:]}")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


class _InMemoryTask:
    """The old path's task: every pair's piece ids as Python lists (the baseline only)."""

    def __init__(self, task: str, tag_id: int, src: list[list[int]], tgt: list[list[int]]) -> None:
        self.task, self.tag_id, self.src, self.tgt = task, tag_id, src, tgt

    def __len__(self) -> int:
        return len(self.src)

    def lengths(self, indices):
        import numpy as np

        return np.array([max(len(self.src[i]), len(self.tgt[i])) + 2 for i in indices], dtype=np.int32)

    def batch(self, indices):
        import torch

        from gradvac_ds.training.data import BOS_ID, EOS_ID, PAD_ID, TaskBatch

        src = [[self.tag_id, *self.src[i], EOS_ID] for i in indices]
        tgt = [[BOS_ID, *self.tgt[i], EOS_ID] for i in indices]

        def pad(rows):
            width = max(map(len, rows))
            return torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows])

        return TaskBatch(self.task, pad(src), pad(tgt), sum(map(len, src)), sum(map(len, tgt)))


def _in_memory_tasks(config) -> list[_InMemoryTask]:
    """Read the whole corpus into lists and encode it, as every rank did before gradvac-prepare."""
    from gradvac_ds.training.data import SharedVocabulary, fairseq_source

    vocabulary = SharedVocabulary.load(config.prepared_dir() / "spm.model")
    source = fairseq_source(config.path, ("train",))
    tasks = []
    for pair in source.pairs:
        lines = [(a.strip(), b.strip()) for a, b in source.lines(pair, "train")]
        src = vocabulary.encode_batch([a for a, _ in lines])
        tgt = vocabulary.encode_batch([b for _, b in lines])
        kept = [
            (s, t) for s, t in zip(src, tgt, strict=True) if max(len(s), len(t)) + 2 <= config.max_positions
        ]
        task = f"{pair[0]}-{pair[1]}"
        tasks.append(
            _InMemoryTask(task, vocabulary.tag_id(pair[1]), [s for s, _ in kept], [t for _, t in kept])
        )
    return tasks


class _AnonPeak:
    """The peak of this process's ``RssAnon``, sampled by a daemon thread every ``interval`` s."""

    def __init__(self, interval: float = 0.002) -> None:
        self.peak_kib = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def current_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
        raise RuntimeError("/proc/self/status has no RssAnon line")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.current_kib())
            time.sleep(self._interval)

    def stop(self) -> float:
        """Stop sampling; the peak in MiB, including the value now."""
        self._stop.set()
        self._thread.join()
        return max(self.peak_kib, self.current_kib()) / 1024


class _FirstBatchClock:
    """A task's data as the schedule sees it, noting when its first micro-batch is built."""

    def __init__(self, data, clock: dict) -> None:
        self.task, self._data, self._clock = data.task, data, clock

    def __len__(self) -> int:
        return len(self._data)

    def lengths(self, indices):
        return self._data.lengths(indices)

    def batch(self, indices):
        batch = self._data.batch(indices)
        self._clock.setdefault("first_batch", time.perf_counter())
        return batch


def _rank_main(rank: int, mode: str, data: dict) -> None:
    """One rank of the data path: open, schedule, 50 micro-batches; prints one JSON line."""
    began = time.perf_counter()
    import megatron.core  # noqa: F401  (training imports it; count it in the baseline RSS)
    import torch  # noqa: F401

    from gradvac_ds.training.data import DataConfig, StepSchedule, open_prepared

    imported = time.perf_counter()
    anon = _AnonPeak()
    config = DataConfig.from_dict(data)
    tasks = open_prepared(config).train if mode == "prepared" else _in_memory_tasks(config)
    clock: dict = {}
    timed = [_FirstBatchClock(task, clock) for task in tasks]
    schedule = StepSchedule(timed, config.batching, rank, 2, config.seed)
    seen = 0
    while seen < MICRO_BATCHES:
        seen += sum(len(batches) for batches in schedule.next_step().values())
        clock.setdefault("first_step", time.perf_counter())
    peak_anon = anon.stop()
    peak_total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timing = {
        "first_batch_s": clock["first_batch"] - imported,
        "first_step_s": clock["first_step"] - imported,
        "import_s": imported - began,
    }
    print(json.dumps({"anon_peak_mib": peak_anon, "rss_total_peak_mib": peak_total, **timing}))


def bytes_per_added_pair(small: dict, large: dict) -> float:
    """Growth of a rank's peak private memory, in bytes, per training pair the large corpus adds."""
    added = large["pairs"] - small["pairs"]
    return (large["rank_anon_peak_mib"] - small["rank_anon_peak_mib"]) * 2**20 / added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=200_000, help="S, training pairs of the small corpus")
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank is not None:
        _rank_main(args.rank, args.mode, json.loads(args.data))
        return
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        root = Path(tmp)
        for name, pairs in (("small", args.pairs), ("large", 10 * args.pairs)):
            corpus, prepared = root / f"corpus-{name}", root / f"prepared-{name}"
            began = time.perf_counter()
            _write_corpus(corpus, pairs)
            print(f"{name}: wrote {pairs} pairs in {time.perf_counter() - began:.0f} s", flush=True)
            data = _data_settings(corpus, prepared, root / "cache")
            seconds, rss = _prepare(_run_config(root / f"{name}.yaml", data))
            ranks = _ranks("prepared", data)
            results[name] = {
                "pairs": pairs, "prepare_s": seconds, "prepare_rss_mib": rss,
                "rank_anon_peak_mib": max(r["anon_peak_mib"] for r in ranks),
                "rank_rss_total_peak_mib": max(r["rss_total_peak_mib"] for r in ranks),
                "first_batch_s": max(r["first_batch_s"] for r in ranks),
                "first_step_s": max(r["first_step_s"] for r in ranks),
                "import_s": max(r["import_s"] for r in ranks),
            }  # fmt: skip
            print(f"{name}: {json.dumps(results[name])}", flush=True)
            if name == "small":
                baseline = _ranks("in_memory", data)
                results["baseline"] = {
                    "rank_anon_peak_mib": max(r["anon_peak_mib"] for r in baseline),
                    "rank_rss_total_peak_mib": max(r["rss_total_peak_mib"] for r in baseline),
                    "first_batch_s": max(r["first_batch_s"] for r in baseline),
                }
                print(f"in-memory baseline, small: {json.dumps(results['baseline'])}", flush=True)
    small, large, baseline = results["small"], results["large"], results["baseline"]
    print(
        json.dumps(
            {
                "pairs_small": small["pairs"],
                "pairs_large": large["pairs"],
                "rank_anon_peak_mib_small": round(small["rank_anon_peak_mib"], 1),
                "rank_anon_peak_mib_large": round(large["rank_anon_peak_mib"], 1),
                "rank_anon_peak_growth_ratio": round(
                    large["rank_anon_peak_mib"] / small["rank_anon_peak_mib"], 4
                ),
                "rank_anon_peak_bytes_per_added_pair": round(bytes_per_added_pair(small, large), 3),
                "rank_rss_total_peak_mib_small": round(small["rank_rss_total_peak_mib"], 1),
                "rank_rss_total_peak_mib_large": round(large["rank_rss_total_peak_mib"], 1),
                "rank_rss_total_peak_growth_ratio": round(
                    large["rank_rss_total_peak_mib"] / small["rank_rss_total_peak_mib"], 4
                ),
                "first_batch_seconds_small": round(small["first_batch_s"], 3),
                "first_batch_seconds_large": round(large["first_batch_s"], 3),
                "first_step_seconds_small": round(small["first_step_s"], 3),
                "first_step_seconds_large": round(large["first_step_s"], 3),
                "rank_import_seconds": round(large["import_s"], 2),
                "prepare_pairs_per_second": round(large["pairs"] / large["prepare_s"], 1),
                "prepare_seconds_large": round(large["prepare_s"], 1),
                "prepare_rss_mib_small": round(small["prepare_rss_mib"], 1),
                "prepare_rss_mib_large": round(large["prepare_rss_mib"], 1),
                "in_memory_rank_anon_peak_mib_small": round(baseline["rank_anon_peak_mib"], 1),
                "in_memory_rank_rss_total_peak_mib_small": round(baseline["rank_rss_total_peak_mib"], 1),
                "in_memory_first_batch_seconds_small": round(baseline["first_batch_s"], 3),
                "rank_anon_peak_ratio_prepared_vs_in_memory_small": round(
                    small["rank_anon_peak_mib"] / baseline["rank_anon_peak_mib"], 4
                ),
                "first_batch_ratio_prepared_vs_in_memory_small": round(
                    small["first_batch_s"] / baseline["first_batch_s"], 4
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
