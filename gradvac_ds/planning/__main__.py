"""``gradvac-plan``: per-rank memory, communication and compute of GradVac on DeepSpeed ZeRO.

Example::

    gradvac-plan --model big --tasks 8 --dp 16 --tp 2
    gradvac-plan --params 1.3B --groups 26 --tasks 8 --dp 16 --zero-stage 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gradvac_ds.config import BUFFER_DTYPES, check_choice
from gradvac_ds.errors import ConfigError
from gradvac_ds.grouping import Granularity
from gradvac_ds.planning.costs import plan_inputs
from gradvac_ds.planning.errors import PlanError
from gradvac_ds.planning.inputs import (
    DEEPSPEED_PERSISTENCE_THRESHOLD,
    DEEPSPEED_REDUCE_BUCKET_SIZE,
    OPTIMIZER_IMPLS,
    OPTIMIZERS,
    PRECISIONS,
    ZERO_STAGES,
    ActivationInputs,
    PlanInputs,
)
from gradvac_ds.planning.model_layout import model_layout
from gradvac_ds.planning.quantities import parse_count
from gradvac_ds.planning.table import render_table

DEFAULT_MICRO_BATCH_TOKENS = 4096
DEFAULT_SEQ_LENGTH = 256
DEFAULT_VOCAB = 64000
GRANULARITIES = tuple(g.value for g in Granularity)
_SIZE_FLAGS = ("params", "layers", "hidden", "heads", "groups")
"""Flags that describe a model by hand; with --model, the model gives them."""


def _choices(values: Sequence[object]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


def build_parser() -> argparse.ArgumentParser:
    """The command line; values are validated by :class:`PlanInputs` (one set of messages)."""
    p = argparse.ArgumentParser(prog="gradvac-plan", description=__doc__.split("\n\n")[0])
    model = p.add_argument_group(
        "model: a preset (P, Ψ, L and sizes read off the model built on the meta device), or by hand"
    )
    model.add_argument(
        "--model", help="preset name (see gradvac_ds/training/modeling/presets) or a .yaml path"
    )
    model.add_argument(
        "--kind",
        default="encdec",
        metavar="KIND",
        help="model kind (gradvac_ds.training.modeling.registry): encdec, decoder, marian; default encdec",
    )
    model.add_argument(
        "--vocab", type=int, default=DEFAULT_VOCAB, help=f"vocabulary (default {DEFAULT_VOCAB})"
    )
    model.add_argument("--params", help="without --model: parameter count P, e.g. 375M or 1.3B")
    model.add_argument("--groups", type=int, help="without --model: L GradVac parameter groups")
    model.add_argument("--layers", type=int, help="without --model: Transformer layers, encoder + decoder")
    model.add_argument("--hidden", type=int, help="without --model: hidden size h")
    model.add_argument("--heads", type=int, help="without --model: attention heads a")
    run = p.add_argument_group("run")
    run.add_argument("--tasks", type=int, required=True, help="K tasks (language pairs) per step")
    run.add_argument("--dp", type=int, default=1, help="N data-parallel ranks (default 1)")
    run.add_argument("--tp", type=int, default=1, help="T tensor-parallel ranks (default 1)")
    run.add_argument("--zero-stage", type=int, default=2, metavar=_choices(ZERO_STAGES), help="default 2")
    run.add_argument("--precision", default="bf16", metavar=_choices(PRECISIONS), help="default bf16")
    run.add_argument("--buffer-dtype", default="fp32", metavar=_choices(BUFFER_DTYPES), help="default fp32")
    run.add_argument("--optimizer", default="adam", metavar=_choices(OPTIMIZERS), help="default adam")
    run.add_argument(
        "--optimizer-impl",
        default="foreach",
        metavar=_choices(OPTIMIZER_IMPLS),
        help="torch Adam path: foreach (CUDA's default, the default), single_tensor (CPU's), fused",
    )
    run.add_argument("--micro-batches-per-task", type=int, default=1, help="M (default 1)")
    run.add_argument(
        "--reduce-bucket-size",
        type=float,
        default=DEEPSPEED_REDUCE_BUCKET_SIZE,
        help="zero_optimization.reduce_bucket_size in elements (default DeepSpeed's 5e8)",
    )
    run.add_argument(
        "--overlap-comm", action="store_true", help="zero_optimization.overlap_comm (ZeRO-1/2: two buckets)"
    )
    run.add_argument(
        "--param-persistence-threshold",
        type=int,
        default=DEEPSPEED_PERSISTENCE_THRESHOLD,
        help="ZeRO-3 stage3_param_persistence_threshold in elements (default DeepSpeed's 1e5)",
    )
    run.add_argument(
        "--micro-batch-tokens",
        type=int,
        default=DEFAULT_MICRO_BATCH_TOKENS,
        help=f"tokens b·s per micro-batch (default {DEFAULT_MICRO_BATCH_TOKENS})",
    )
    run.add_argument(
        "--seq-length",
        type=int,
        help=f"sequence length s (default: the model's maximum, else {DEFAULT_SEQ_LENGTH})",
    )
    run.add_argument(
        "--granularity",
        default="layer",
        metavar=_choices(GRANULARITIES),
        help="GradVac grouping; L at it is read off the model (default layer)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def _run_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "dp": args.dp,
        "zero_stage": args.zero_stage,
        "precision": args.precision,
        "buffer_dtype": args.buffer_dtype,
        "optimizer": args.optimizer,
        "optimizer_impl": args.optimizer_impl,
        "micro_batches_per_task": args.micro_batches_per_task,
        "reduce_bucket_size": _whole(args.reduce_bucket_size, "--reduce-bucket-size"),
        "overlap_comm": args.overlap_comm,
        "param_persistence_threshold": args.param_persistence_threshold,
    }


def _whole(value: float, flag: str) -> int:
    """A count given as a float (``5e8``, as DeepSpeed configs write it) that must be whole."""
    if value != int(value):
        raise PlanError(f"{flag} = {value}: must be a whole number of elements")
    return int(value)


def inputs_from_args(args: argparse.Namespace) -> PlanInputs:
    """The model's facts (with --model) or the hand-given sizes, plus the run's flags."""
    check_choice("granularity", args.granularity, GRANULARITIES)
    if args.model is not None:
        given = [f"--{flag}" for flag in _SIZE_FLAGS if getattr(args, flag) is not None]
        if given:
            raise PlanError(f"{', '.join(given)}: --model {args.model} gives them; drop them or --model")
        layout = model_layout(args.model, args.vocab, args.kind, args.tp)
        return layout.plan_inputs(
            args.tasks,
            args.granularity,
            micro_batch_tokens=args.micro_batch_tokens,
            seq_length=args.seq_length,
            **_run_options(args),
        )
    if args.params is None:
        raise PlanError("params: give --params (e.g. 1.3B) or a --model preset")
    groups = args.groups
    if groups is None:
        if args.granularity != Granularity.MODEL.value:
            raise PlanError(
                f"granularity = {args.granularity!r}: L depends on the model; give --model or --groups"
            )
        groups = 1
    activations = None
    if args.layers is not None and args.hidden is not None and args.heads is not None:
        seq_length = args.seq_length or DEFAULT_SEQ_LENGTH
        activations = ActivationInputs(
            args.micro_batch_tokens, seq_length, args.hidden, args.heads, args.layers
        )
    return PlanInputs(
        params=parse_count(args.params, "--params"),
        tasks=args.tasks,
        tp=args.tp,
        groups=groups,
        activations=activations,
        **_run_options(args),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, print the plan (table or ``--json``), return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = plan_inputs(inputs_from_args(args))
    except ConfigError as error:
        parser.error(str(error))
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
