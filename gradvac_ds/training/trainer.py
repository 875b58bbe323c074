"""Multilingual NMT training with GradVac under the DeepSpeed launcher.

For each training mode of the run config (e.g. ``sum``, ``pcgrad``, ``gradvac``, same data and
seed), :func:`train_mode` builds the megatron-core model, initialises DeepSpeed with GradVac, runs
the step schedule (each task's micro-batches under its name), validates, checkpoints, and finally
decodes the test split and scores it with sacreBLEU. :func:`run` compares the modes in one table.
Losses, BLEU and chrF also go to DeepSpeed's monitor when the DeepSpeed config enables one (see
:mod:`gradvac_ds.training.monitoring`); each mode and the run end with a summary table
(:mod:`gradvac_ds.training.summary`).

Every rank runs the same evaluation (the same sentences, in the same order), so that ZeRO-3 and
tensor parallelism, which need every rank in each forward, work unchanged.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import deepspeed
import torch
from deepspeed import comm as dist
from tqdm import tqdm

import gradvac_ds
from gradvac_ds.analysis.log import SimilarityLog
from gradvac_ds.config import GradVacConfig
from gradvac_ds.engine import GradVacEngine
from gradvac_ds.training import checkpointing, monitoring
from gradvac_ds.training.data import DataBundle, EncodedTask, build_data, iter_eval_batches
from gradvac_ds.training.evaluation import SpecialTokens, beam_search, greedy_decode, score_by_pair
from gradvac_ds.training.megatron import MegatronMPU, init_model_parallel, parallel_groups
from gradvac_ds.training.modeling import build_model
from gradvac_ds.training.run_config import RunConfig
from gradvac_ds.training.summary import comparison_table, mode_summary, write_samples

SAMPLES_PER_PAIR = 3
"""Sample translations per pair written to ``<mode_dir>/samples.txt``."""


def inverse_sqrt_schedule(warmup_steps: int):
    """Multiplier of the peak learning rate: linear warm-up, then ``sqrt(warmup / step)``."""

    def factor(step: int) -> float:
        step = step + 1
        if warmup_steps and step < warmup_steps:
            return step / warmup_steps
        return math.sqrt(max(warmup_steps, 1) / step)

    return factor


def setup_distributed(config: RunConfig) -> None:
    """Process groups from the launcher's environment (deepspeed, torchrun or SLURM)."""
    backend = deepspeed.get_accelerator().communication_backend_name()
    timeout = timedelta(minutes=config.training.dist_timeout_minutes)
    deepspeed.init_distributed(dist_backend=backend, timeout=timeout)
    init_model_parallel(config.model.tensor_parallel)


def _device() -> torch.device:
    return torch.device(deepspeed.get_accelerator().current_device_name())


def _is_main() -> bool:
    return dist.get_rank() == 0


@torch.no_grad()
def validation_losses(model: torch.nn.Module, bundle: DataBundle, config: RunConfig) -> dict[str, float]:
    """Token-weighted validation loss per language pair (label smoothing included)."""
    was_training = model.training
    model.eval()
    losses = {}
    for task, evalset in monitoring.progress(bundle.valid.items(), "validation", len(bundle.valid)):
        total, tokens = 0.0, 0
        for batch in iter_eval_batches(
            evalset.encoded, config.evaluation.batch_tokens, config.data.batching.max_sentences
        ):
            batch = batch.to(_device())
            total += float(model(batch.src, batch.tgt)) * batch.num_tgt_tokens
            tokens += batch.num_tgt_tokens
        losses[task] = total / max(tokens, 1)
    model.train(was_training)
    return losses


@torch.no_grad()
def evaluate_bleu(
    model: torch.nn.Module, bundle: DataBundle, config: RunConfig, samples: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Decode the test split (greedy or beam), detokenise, and score each pair with sacreBLEU;
    rank 0 writes the first sentences of each pair to ``samples`` when it is given."""
    was_training = model.training
    model.eval()
    vocab, ev = bundle.vocabulary, config.evaluation
    special = SpecialTokens(bos=vocab.bos_id, eos=vocab.eos_id, pad=vocab.pad_id)
    outputs = {}
    for task, evalset in monitoring.progress(bundle.test.items(), "decoding test", len(bundle.test)):
        count = min(ev.max_sentences, len(evalset.references))
        encoded = evalset.encoded
        subset = EncodedTask(encoded.task, encoded.tag_id, encoded.src[:count], encoded.tgt[:count])
        hypotheses = []
        for batch in iter_eval_batches(subset, ev.batch_tokens, config.data.batching.max_sentences):
            src = batch.src.to(_device())
            if ev.beam_size == 1:
                ids = greedy_decode(model, src, special, ev.max_length)
            else:
                ids = beam_search(model, src, special, ev.max_length, ev.beam_size, ev.length_penalty)
            hypotheses.extend(vocab.decode(row) for row in ids)
        outputs[task] = (hypotheses, evalset.references[:count])
    model.train(was_training)
    if samples is not None and _is_main():
        texts = {task: (bundle.test[task].sources, refs, hyps) for task, (hyps, refs) in outputs.items()}
        write_samples(samples, texts, SAMPLES_PER_PAIR)
    return {pair: vars(scores) for pair, scores in score_by_pair(outputs).items()}


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


def _build_engine(config: RunConfig, mode: str, bundle: DataBundle) -> GradVacEngine:
    model = build_model(
        config.model.preset, len(bundle.vocabulary), config.model.kind, seed=config.data.seed,
        pad_id=bundle.vocabulary.pad_id, device=_device(),
    )  # fmt: skip
    training = config.training
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=training.lr, betas=training.betas, weight_decay=training.weight_decay
    )
    schedule = inverse_sqrt_schedule(training.warmup_steps)
    engine, *_ = gradvac_ds.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
        config=monitoring.per_mode_monitors(
            config.deepspeed_config(mode, bundle.tasks), config.run_dir, mode
        ),
        mpu=MegatronMPU(),
    )
    return engine


def train_mode(
    config: RunConfig, mode: str, bundle: DataBundle, resume: bool, position: str = ""
) -> dict[str, Any]:
    """Train one mode to ``training.steps`` (resuming from its latest checkpoint if asked) and
    return its test scores; results go to ``<run_dir>/<mode>/``. ``position`` (e.g. "mode 2 of 3")
    labels the progress bar and the summary."""
    mode_dir = Path(config.run_dir) / mode
    ckpt_dir = mode_dir / "checkpoints"
    engine = _build_engine(config, mode, bundle)
    groups = parallel_groups()
    dp_rank, dp_world = (
        dist.get_rank(group=groups.data_parallel),
        dist.get_world_size(group=groups.data_parallel),
    )
    schedule = bundle.schedule(dp_rank, dp_world)
    start = 0
    if resume and (loaded := checkpointing.load(engine, ckpt_dir)) is not None:
        schedule.load_state_dict(loaded[1])
        start = schedule.step
    similarity_log = None
    if _is_main():
        gv_config = engine.gradvac_config
        metadata = {"mode": mode, "beta": gv_config.beta, "granularity": gv_config.granularity}
        similarity_log = SimilarityLog(
            mode_dir, engine.state.task_names, engine.grouping.group_names, metadata=metadata
        )
        engine.add_step_callback(lambda o: o.skipped or similarity_log.record(o.step, o.result))
    label = f"{mode} ({position})" if position else mode
    progress = _Progress(config.training.steps, start, label, dp_world)
    reporting = monitoring.monitor_enabled(engine)
    losses = monitoring.TrainLossMeter(bundle.tasks, _device(), groups.data_parallel)
    loss_interval = engine.gradvac_config.log_interval
    history: list[dict[str, Any]] = []
    for step in range(start, config.training.steps):
        step_losses, tokens = defaultdict(float), 0
        for task, batches in schedule.next_step().items():
            with engine.task(task, micro_batches=len(batches)):
                for batch in batches:
                    batch = batch.to(_device())
                    loss = engine(batch.src, batch.tgt)
                    engine.backward(loss)
                    value = loss.item()
                    step_losses[task] += value / len(batches)
                    losses.add(task, value, batch.num_tgt_tokens)
                    tokens += batch.num_tgt_tokens
        engine.step()
        progress.update(step_losses, tokens)
        done = step + 1
        if reporting and loss_interval and (step % loss_interval == 0 or done == config.training.steps):
            engine.monitor.write_events(losses.events(engine.global_samples))
        if done % config.training.eval_interval == 0 or done == config.training.steps:
            valid = validation_losses(engine.module, bundle, config)
            history.append({"step": done, "valid_loss": valid})
            if reporting:
                engine.monitor.write_events(monitoring.validation_events(valid, engine.global_samples))
        if done % config.training.checkpoint_interval == 0 or done == config.training.steps:
            with monitoring.announce(f"{label}: checkpoint step{done}"):
                checkpointing.save(engine, ckpt_dir, f"step{done}", schedule.state_dict())
    progress.close()
    if not history:  # resumed a finished mode: its final validation loss for the summary
        history.append({"step": start, "valid_loss": validation_losses(engine.module, bundle, config)})
    if similarity_log is not None:
        similarity_log.close()
    scores = evaluate_bleu(engine.module, bundle, config, mode_dir / "samples.txt")
    if reporting:
        engine.monitor.write_events(monitoring.score_events(scores, engine.global_samples))
    if _is_main():
        mode_dir.mkdir(parents=True, exist_ok=True)
        (mode_dir / "bleu.json").write_text(json.dumps(scores, indent=2))
        (mode_dir / "validation.json").write_text(json.dumps(history, indent=2))
        summary = mode_summary(mode, label, history[-1]["step"], scores, history[-1]["valid_loss"])
        (mode_dir / "summary.txt").write_text(summary + "\n")
        tqdm.write(summary)
    dist.barrier()
    return scores


def final_validation_loss(mode_dir: Path) -> dict[str, float]:
    """The last validation losses per pair that ``<mode_dir>/validation.json`` holds."""
    return json.loads((mode_dir / "validation.json").read_text())[-1]["valid_loss"]


def _seed_note(config: RunConfig) -> str:
    gradvac_seed = GradVacConfig.from_dict(config.deepspeed["gradvac"]).seed
    return f"seeds: data.seed={config.data.seed} (model init, batches), gradvac.seed={gradvac_seed}"


def run(config: RunConfig, modes: list[str] | None = None, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate every mode; write ``<run_dir>/bleu.json`` and print the comparison."""
    setup_distributed(config)
    bundle = build_data(config.data)
    run_dir = Path(config.run_dir)
    if _is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        if bundle.families:
            rows = "".join(f"{lang},{family}\n" for lang, family in sorted(bundle.families.items()))
            (run_dir / "families.csv").write_text("language,family\n" + rows)
    chosen = modes or config.training.modes
    results = {
        mode: train_mode(config, mode, bundle, resume, f"mode {i} of {len(chosen)}")
        for i, mode in enumerate(chosen, 1)
    }
    if _is_main():
        (run_dir / "bleu.json").write_text(json.dumps(results, indent=2))
        valid = {mode: final_validation_loss(run_dir / mode) for mode in results}
        table = comparison_table(results, valid, _seed_note(config))
        (run_dir / "summary.txt").write_text(table + "\n")
        print(table, flush=True)
    return results
