"""Multilingual NMT training and LM pretraining with GradVac under the DeepSpeed launcher.

The data is a directory written by ``gradvac-prepare``, checked and memory-mapped before any
process group starts (:func:`gradvac_ds.training.data.open_prepared`). For each training mode of
the run config (e.g. ``sum``, ``pcgrad``, ``gradvac``, same data and seed), :func:`train_mode`
builds the model and the GradVac engine (:mod:`gradvac_ds.training.build`), runs
the step schedule (each task's micro-batches under its name), validates, checkpoints, and finally
decodes the test split, scores it with sacreBLEU and writes the hypotheses and references
(``<mode_dir>/translations/<pair>.hyp`` / ``.ref``) and a few samples (``<mode_dir>/samples.txt``);
language models report per-language validation loss and perplexity instead. :func:`run` compares
the modes in one table. Losses, BLEU and chrF also go to DeepSpeed's monitor when the DeepSpeed
config enables one (see :mod:`gradvac_ds.training.monitoring`); each mode and the run end with a
summary table (:mod:`gradvac_ds.training.summary`).

With ``training.seeds`` the run trains every mode once per seed on the same prepared data and
vocabulary (the seed replaces ``data.seed``, i.e. the model initialisation and the step schedule,
and the GradVac seed), into ``<run_dir>/seed<s>/<mode>/``, and then writes the seed-aware
comparison of ``gradvac-compare`` to ``<run_dir>/compare/``. Without seeds the layout is
``<run_dir>/<mode>/``.

Every rank runs the same evaluation (the same sentences, in the same order), so that ZeRO-3 and
tensor parallelism, which need every rank in each forward, work unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deepspeed import comm as dist
from tqdm import tqdm

from gradvac_ds.analysis.log import SimilarityLog
from gradvac_ds.config import split_config
from gradvac_ds.training import checkpointing, jit_ops, monitoring, outputs
from gradvac_ds.training.build import build_engine, device, distributed
from gradvac_ds.training.data import PreparedData, iter_eval_batches, open_prepared, parse_task_name
from gradvac_ds.training.errors import Interrupted
from gradvac_ds.training.evaluation import SpecialTokens, beam_search, greedy_decode, score_by_pair
from gradvac_ds.training.megatron import parallel_groups
from gradvac_ds.training.run_config import RunConfig
from gradvac_ds.training.stopping import SkipStreak, StopSignals
from gradvac_ds.training.summary import comparison_table, mode_summary, write_samples

SOURCE_GAP = "source_gap.json"
"""``<mode_dir>/source_gap.json``: {pair: final validation loss with mismatched sources - true}."""

SAMPLES_PER_PAIR = 3
"""Sample translations per pair written to ``<mode_dir>/samples.txt``."""


def _is_main() -> bool:
    return dist.get_rank() == 0


@torch.no_grad()
def validation_losses(
    model: torch.nn.Module, data: PreparedData, config: RunConfig, mismatched_sources: bool = False
) -> dict[str, float]:
    """Token-weighted validation loss per task (label smoothing included for translation) over the
    first ``evaluation.max_valid_sentences`` dev examples of each task (all when None).

    With ``mismatched_sources`` each target is scored against the source of the previous sentence of
    its batch (``src.roll(1, 0)``): the loss of a model that ignores its source does not change."""
    was_training = model.training
    model.eval()
    losses = {}
    for task, evalset in monitoring.progress(data.valid.items(), "validation", len(data.valid)):
        total, tokens = 0.0, 0
        for batch in iter_eval_batches(
            evalset,
            config.evaluation.batch_tokens,
            config.data.batching.max_sentences,
            limit=config.evaluation.max_valid_sentences,
        ):
            batch = batch.to(device())
            inputs = batch.inputs
            if mismatched_sources:
                inputs = (inputs[0].roll(1, dims=0), *inputs[1:])
            total += float(model(*inputs)) * batch.num_tgt_tokens
            tokens += batch.num_tgt_tokens
        losses[task] = total / max(tokens, 1)
    model.train(was_training)
    return losses


def source_gaps(
    model: torch.nn.Module, data: PreparedData, config: RunConfig, losses: dict[str, float]
) -> dict[str, float]:
    """Per task, the validation loss with mismatched sources minus ``losses`` (the true ones): about
    0 while the decoder is a language model of the target, large once it translates its source."""
    mismatched = validation_losses(model, data, config, mismatched_sources=True)
    return {task: mismatched[task] - loss for task, loss in losses.items()}


def _perplexities(losses: dict[str, float]) -> dict[str, float]:
    """exp(validation loss) per language (capped at exp(50) so a diverged model stays printable)."""
    return {task: math.exp(min(loss, 50.0)) for task, loss in losses.items()}


def write_translations(directory: Path, outputs: dict[str, tuple[list[str], list[str]]]) -> None:
    """``directory/<pair>.hyp`` and ``.ref``: one detokenised sentence a line, line i of both files the
    same test sentence (newlines inside a hypothesis become spaces, so the line counts agree)."""
    directory.mkdir(parents=True, exist_ok=True)
    for pair, (hypotheses, references) in outputs.items():
        for suffix, lines in (("hyp", hypotheses), ("ref", references)):
            text = "".join(line.replace("\n", " ") + "\n" for line in lines)
            (directory / f"{pair}.{suffix}").write_text(text, encoding="utf-8")


@torch.no_grad()
def evaluate_bleu(
    model: torch.nn.Module, data: PreparedData, config: RunConfig, mode_dir: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Decode the test split (greedy or beam), detokenise, and score each pair with sacreBLEU;
    with ``mode_dir``, rank 0 writes every hypothesis and reference to ``mode_dir/translations`` and
    the first sentences of each pair to ``mode_dir/samples.txt``."""
    was_training = model.training
    model.eval()
    vocab, ev = data.vocabulary, config.evaluation
    special = SpecialTokens(bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id)
    outputs, source_text = {}, {}
    for task, testset in monitoring.progress(data.test.items(), "decoding test", len(data.test)):
        count = min(ev.max_sentences, len(testset.references))
        hypotheses, sources = [], []
        max_sentences = config.data.batching.max_sentences
        for batch in iter_eval_batches(testset.data, ev.batch_tokens, max_sentences, limit=count):
            sources.extend(vocab.decode(row) for row in batch.src.tolist())
            src = batch.src.to(device())
            if ev.beam_size == 1:
                ids = greedy_decode(model, src, special, ev.max_length)
            else:
                ids = beam_search(model, src, special, ev.max_length, ev.beam_size, ev.length_penalty)
            hypotheses.extend(vocab.decode(row) for row in ids)
        outputs[task] = (hypotheses, testset.references[:count])
        source_text[task] = sources
    model.train(was_training)
    if mode_dir is not None and _is_main():
        write_translations(mode_dir / "translations", outputs)
        texts = {task: (source_text[task], refs, hyps) for task, (hyps, refs) in outputs.items()}
        write_samples(mode_dir / "samples.txt", texts, SAMPLES_PER_PAIR)
    return {pair: vars(scores) for pair, scores in score_by_pair(outputs).items()}


class Throughput:
    """Training tokens per second of one mode: target tokens (bos/eos included) of every
    data-parallel rank over the wall time of the optimizer steps alone (forward, backward, GradVac,
    optimizer), without validation, checkpoints or decoding."""

    def __init__(self, start_step: int) -> None:
        self.start_step = start_step
        self.steps, self.tokens, self.seconds = 0, 0, 0.0
        self._began = 0.0

    def begin_step(self) -> None:
        self._began = time.perf_counter()

    def end_step(self, tokens: int) -> None:
        self.seconds += time.perf_counter() - self._began
        self.steps += 1
        self.tokens += tokens

    def write(self, path: Path, group: Any, is_main: bool) -> None:
        """``path`` (JSON, written by rank 0): steps, tokens over all ranks of ``group``, seconds (the
        slowest rank's), tokens_per_s. Every rank of the group must call it (two all-reduces)."""
        counts = torch.tensor([self.tokens], dtype=torch.float64, device=device())
        seconds = torch.tensor([self.seconds], dtype=torch.float64, device=device())
        dist.all_reduce(counts, group=group)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX, group=group)
        if not is_main:
            return
        total, wall = int(counts.item()), float(seconds.item())
        record = {
            "first_step": self.start_step,
            "steps": self.steps,
            "tokens": total,
            "seconds": wall,
            "tokens_per_s": total / wall if wall > 0 else None,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")


class _Progress:
    """Rank-0 progress bar: mean loss per task over the last steps, and tokens per second."""

    def __init__(self, total: int, start: int, mode: str, world: int) -> None:
        self.bar = tqdm(total=total, initial=start, desc=mode, disable=not _is_main(), dynamic_ncols=True)
        self.world = world
        self.losses: dict[str, float] = {}
        self.tokens, self.since = 0, time.perf_counter()

    def update(self, step_losses: dict[str, float], tokens: int) -> None:
        for task, loss in step_losses.items():
            self.losses[task] = 0.9 * self.losses.get(task, loss) + 0.1 * loss
        self.tokens += tokens * self.world
        rate = self.tokens / max(time.perf_counter() - self.since, 1e-9)
        shown = " ".join(f"{t}={v:.2f}" for t, v in sorted(self.losses.items()))
        self.bar.set_postfix_str(f"{shown} tok/s={rate:,.0f}")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def train_mode(
    config: RunConfig, mode: str, data: PreparedData, resume: bool, stop: StopSignals, position: str = ""
) -> dict[str, Any]:
    """Train one mode to ``training.steps`` (resuming from its latest checkpoint if asked) and
    return its test scores; results go to ``<run_dir>/<mode>/``. ``position`` (e.g. "mode 2 of 3")
    labels the progress bar and the summary.

    Raises:
        Interrupted: a stop was requested (``stop``); the final checkpoint is written.
        SkippedStepsError: ``training.max_consecutive_skipped_steps`` steps in a row were skipped.
        NonFiniteModelError, CheckpointError: a checkpoint must not be written, or cannot be loaded.
    """
    mode_dir = Path(config.run_dir) / mode
    ckpt_dir = mode_dir / "checkpoints"
    engine = build_engine(config, mode, data)
    groups = parallel_groups()
    dp_rank, dp_world = (
        dist.get_rank(group=groups.data_parallel),
        dist.get_world_size(group=groups.data_parallel),
    )
    schedule = data.schedule(dp_rank, dp_world)
    start = 0
    if resume and (loaded := checkpointing.load(engine, ckpt_dir)) is not None:
        schedule.load_state_dict(loaded[1])
        start = schedule.step
        monitoring.resume_csv_monitor(engine, engine.global_samples)
    similarity_log = None
    if _is_main():
        gv_config = engine.gradvac_config
        metadata = {
            "mode": mode, "beta": gv_config.beta, "granularity": gv_config.granularity,
            "options": dataclasses.asdict(gv_config.weighting.options),
        }  # fmt: skip
        similarity_log = SimilarityLog(
            mode_dir,
            engine.state.task_names,
            engine.grouping.group_names,
            window=config.training.similarity_window,
            metadata=metadata,
        )
        engine.add_step_callback(lambda o: o.skipped or similarity_log.record(o.step, o.result))
    label = f"{mode} ({position})" if position else mode
    progress = _Progress(config.training.steps, start, label, dp_world)
    reporting = monitoring.monitor_enabled(engine)
    losses = monitoring.TrainLossMeter(data.tasks, device(), groups.data_parallel)
    loss_interval = engine.gradvac_config.log_interval
    history = outputs.ValidationHistory(mode_dir, start) if _is_main() else None
    last_valid: tuple[int, dict[str, float]] | None = None
    skips = SkipStreak(config.training.max_consecutive_skipped_steps)
    throughput = Throughput(start)
    for step in range(start, config.training.steps):
        throughput.begin_step()
        step_losses, tokens = defaultdict(float), 0
        for task, batches in schedule.next_step().items():
            with engine.task(task, micro_batches=len(batches)):
                for batch in batches:
                    batch = batch.to(device())
                    loss = engine(*batch.inputs)
                    engine.backward(loss)
                    value = loss.item()
                    step_losses[task] += value / len(batches)
                    losses.add(task, value, batch.num_tgt_tokens)
                    tokens += batch.num_tgt_tokens
        outcome = engine.step()
        throughput.end_step(tokens)
        progress.update(step_losses, tokens)
        done = step + 1
        skips.update(done, outcome.skipped, outcome.skip_reason)
        if reporting and loss_interval and (step % loss_interval == 0 or done == config.training.steps):
            engine.monitor.write_events(losses.events(engine.global_samples))
        if done % config.training.eval_interval == 0 or done == config.training.steps:
            valid = validation_losses(engine.module, data, config)
            last_valid = (done, valid)
            if history is not None:
                history.append(done, valid, _perplexities(valid) if data.is_lm else None)
            if reporting:
                engine.monitor.write_events(monitoring.validation_events(valid, engine.global_samples))
        saved = done % config.training.checkpoint_interval == 0 or done == config.training.steps
        signum = stop.agreed()
        if saved or signum is not None:
            with monitoring.announce(f"{label}: checkpoint step{done}"):
                checkpointing.save(engine, ckpt_dir, f"step{done}", schedule.state_dict())
        if signum is not None:
            progress.close()
            if similarity_log is not None:
                similarity_log.close()
            raise Interrupted(signum, f"stopped at step {done}: final checkpoint {ckpt_dir / f'step{done}'}")
    progress.close()
    if last_valid is None:  # resumed a finished mode: its final validation loss for the summary
        last_valid = (start, validation_losses(engine.module, data, config))
    gaps = None
    if not data.is_lm and last_valid[1]:
        gaps = source_gaps(engine.module, data, config, last_valid[1])
    if similarity_log is not None:
        similarity_log.close()
    if throughput.steps:  # a finished mode resumed to be evaluated again keeps its training record
        throughput.write(mode_dir / "throughput.json", groups.data_parallel, _is_main())
    scores = evaluate_bleu(engine.module, data, config, mode_dir) if data.test else {}
    if reporting and scores:
        engine.monitor.write_events(monitoring.score_events(scores, engine.global_samples))
    if _is_main():
        mode_dir.mkdir(parents=True, exist_ok=True)
        if scores:
            (mode_dir / "bleu.json").write_text(json.dumps(scores, indent=2))
        if gaps is not None:
            (mode_dir / SOURCE_GAP).write_text(json.dumps(gaps, indent=2))
        if scores:
            summary = mode_summary(mode, label, last_valid[0], scores, last_valid[1], gaps)
        else:  # a language model, or no test split: the validation loss alone
            shown = " ".join(f"{task}={loss:.3f}" for task, loss in last_valid[1].items())
            summary = f"{label} after {last_valid[0]} steps: validation loss {shown}"
        (mode_dir / "summary.txt").write_text(summary + "\n")
        tqdm.write(summary)
    dist.barrier()
    return scores


def final_source_gap(mode_dir: Path) -> dict[str, float] | None:
    """The per-pair source gaps of ``<mode_dir>/source_gap.json`` (None without the file)."""
    path = mode_dir / SOURCE_GAP
    return json.loads(path.read_text()) if path.is_file() else None


def final_validation_loss(mode_dir: Path) -> dict[str, float]:
    """The last validation losses per pair that ``<mode_dir>/validation.json`` holds."""
    return json.loads((mode_dir / "validation.json").read_text())[-1]["valid_loss"]


def _seed_note(config: RunConfig) -> str:
    gradvac_seed = split_config(config.deepspeed)[1].seed
    return f"seeds: data.seed={config.data.seed} (model init, batches), gradvac.seed={gradvac_seed}"


PIECE_COUNT_EXAMPLES = 20_000
"""Training examples per language counted for the vocabulary-overlap control (a bounded sample, so
that the start of a run does not grow with the corpus)."""


def write_piece_counts(path: Path, data: PreparedData) -> None:
    """``path`` (.npz): ``languages`` [n] and ``counts`` [n, V], how often each vocabulary id occurs
    in the first :data:`PIECE_COUNT_EXAMPLES` training examples of each non-pivot language (one side
    of its first task; every language of a language model). ``gradvac-compare`` turns them into the
    vocabulary-overlap control."""
    pivot, counts = data.config.pivot, {}
    for task in data.train:
        count = min(len(task), PIECE_COUNT_EXAMPLES)
        if data.is_lm:
            language, pieces = task.task, [task.sample(i) for i in range(count)]
        else:
            src, tgt = parse_task_name(task.task)
            language, side = (src, 0) if tgt == pivot else (tgt, 1)
            pieces = [task.dataset[2 * i + side] for i in range(count)]
        if language not in counts and pieces:
            ids = np.concatenate(pieces).astype(np.int64)
            counts[language] = np.bincount(ids, minlength=len(data.vocabulary))
    languages = sorted(counts)
    np.savez(path, languages=np.array(languages), counts=np.stack([counts[lang] for lang in languages]))


def seeded(config: RunConfig, data: PreparedData, seed: int) -> tuple[RunConfig, PreparedData]:
    """The config and data of one seed: ``data.seed`` (model init, step schedule) and the GradVac
    seed set to ``seed``, results under ``<run_dir>/seed<seed>``; corpus and vocabulary unchanged."""
    data_config = dataclasses.replace(config.data, seed=seed)
    deepspeed_section = {**config.deepspeed, "gradvac": {**config.deepspeed["gradvac"], "seed": seed}}
    run_config = dataclasses.replace(
        config,
        run_dir=str(Path(config.run_dir) / f"seed{seed}"),
        data=data_config,
        deepspeed=deepspeed_section,
    )
    return run_config, dataclasses.replace(data, config=data_config)


def _train_modes(
    config: RunConfig, modes: list[str], data: PreparedData, resume: bool, stop: StopSignals, prefix: str = ""
) -> dict[str, Any]:
    """Train each mode in turn, labelled "mode i of n" (after ``prefix``)."""
    return {
        mode: train_mode(config, mode, data, resume, stop, f"{prefix}mode {i} of {len(modes)}")
        for i, mode in enumerate(modes, 1)
    }


def run(
    config: RunConfig, modes: list[str] | None = None, resume: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Train and evaluate every mode (per seed with ``training.seeds``); write ``<run_dir>/bleu.json``
    and print the comparison (with seeds: ``{"seed<s>": {mode: scores}}`` and ``<run_dir>/compare/``).

    ``resume`` continues each mode from its latest checkpoint; ``overwrite`` deletes the modes'
    earlier outputs first. With neither, a run directory holding a mode's outputs is refused.
    SIGTERM/SIGINT stop the run at the next step boundary with a final checkpoint (``Interrupted``).
    """
    modes = list(modes or config.training.modes)
    data = open_prepared(config.data)  # every check of the prepared files, before any process group
    run_dir = Path(config.run_dir)
    mode_parents = [run_dir / f"seed{seed}" for seed in config.training.seeds] or [run_dir]
    for parent in mode_parents:
        outputs.check_run_dir(parent, modes, resume, overwrite)
    jit_ops.check_build_locks()
    with distributed(config):
        is_main = _is_main()
        if overwrite and is_main:
            for parent in mode_parents:
                outputs.clear_modes(parent, modes)
        dist.barrier()
        if is_main:
            print(f"data: {data.directory} ({len(data.tasks)} tasks)\n{data.filter_report()}", flush=True)
            if not data.is_lm and not data.test:
                print(f"no test split in {data.directory}: BLEU is skipped", flush=True)
            run_dir.mkdir(parents=True, exist_ok=True)
            if data.families:
                rows = "".join(f"{lang},{family}\n" for lang, family in sorted(data.families.items()))
                (run_dir / "families.csv").write_text("language,family\n" + rows)
            write_piece_counts(run_dir / "piece_counts.npz", data)
        if config.training.seeds:
            # imported before training, so that a missing "analysis" extra fails now, not after the runs
            from gradvac_ds.analysis.compare import compare_runs
        with StopSignals() as stop:
            if not config.training.seeds:
                results = _train_modes(config, modes, data, resume, stop)
            else:
                results = {}
                for seed in config.training.seeds:
                    seed_config, seed_data = seeded(config, data, seed)
                    results[f"seed{seed}"] = _train_modes(
                        seed_config, modes, seed_data, resume, stop, f"seed {seed}, "
                    )
    # the groups are gone: rank 0's reports need no peer, and no peer waits on them
    if not is_main or not data.test:
        return results
    (run_dir / "bleu.json").write_text(json.dumps(results, indent=2))
    if config.training.seeds:
        compare_runs([run_dir], run_dir / "compare")
        print((run_dir / "compare" / "compare.txt").read_text(), flush=True)
    else:
        valid = {mode: final_validation_loss(run_dir / mode) for mode in results}
        gaps = {mode: final_source_gap(run_dir / mode) for mode in results}
        table = comparison_table(results, valid, _seed_note(config), gaps)
        (run_dir / "summary.txt").write_text(table + "\n")
        print(table, flush=True)
    return results
