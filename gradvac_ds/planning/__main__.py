"""``gradvac-plan``: per-rank memory, communication and compute of GradVac on DeepSpeed ZeRO.

Example::

    gradvac-plan --params 1.3B --tasks 8 --dp 16 --zero-stage 2 --layers 24
    gradvac-plan --model big --tasks 8 --dp 16 --tp 2 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gradvac_ds.planning.costs import plan_inputs
from gradvac_ds.planning.errors import PlanError
from gradvac_ds.planning.inputs import (
    BUFFER_DTYPES,
    GRANULARITIES,
    OPTIMIZERS,
    PRECISIONS,
    ZERO_STAGES,
    ActivationInputs,
    PlanInputs,
    num_groups,
)
from gradvac_ds.planning.presets import MODEL_KINDS, model_sizes
from gradvac_ds.planning.quantities import parse_count
from gradvac_ds.planning.table import render_table

DEFAULT_MICRO_BATCH_TOKENS = 4096
DEFAULT_SEQ_LENGTH = 256
DEFAULT_VOCAB = 64000


def _choices(values: Sequence[object]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


def build_parser() -> argparse.ArgumentParser:
    """The command line; values are validated by :class:`PlanInputs` (one set of messages)."""
    p = argparse.ArgumentParser(prog="gradvac-plan", description=__doc__.split("\n\n")[0])
    model = p.add_argument_group("model (a preset, or --params and optional sizes)")
    model.add_argument("--model", help="preset name (models/<name>.yaml) or a preset .yaml path")
    model.add_argument("--kind", default="encdec", metavar=_choices(MODEL_KINDS), help="default encdec")
    model.add_argument(
        "--vocab", type=int, default=DEFAULT_VOCAB, help=f"vocabulary (default {DEFAULT_VOCAB})"
    )
    model.add_argument("--params", help="parameter count P, e.g. 375M or 1.3B (replaces the preset's)")
    model.add_argument("--layers", type=int, help="Transformer layers, encoder + decoder")
    model.add_argument("--hidden", type=int, help="hidden size h")
    model.add_argument("--heads", type=int, help="attention heads a")
    model.add_argument("--ffn", type=int, help="FFN hidden size (checked for divisibility by T)")
    run = p.add_argument_group("run")
    run.add_argument("--tasks", type=int, required=True, help="K tasks (language pairs) per step")
    run.add_argument("--dp", type=int, default=1, help="N data-parallel ranks (default 1)")
    run.add_argument("--tp", type=int, default=1, help="T tensor-parallel ranks (default 1)")
    run.add_argument("--zero-stage", type=int, default=2, metavar=_choices(ZERO_STAGES), help="default 2")
    run.add_argument("--precision", default="bf16", metavar=_choices(PRECISIONS), help="default bf16")
    run.add_argument("--buffer-dtype", default="fp32", metavar=_choices(BUFFER_DTYPES), help="default fp32")
    run.add_argument("--optimizer", default="adam", metavar=_choices(OPTIMIZERS), help="default adam")
    run.add_argument("--micro-batches-per-task", type=int, default=1, help="M (default 1)")
    run.add_argument(
        "--micro-batch-tokens",
        type=int,
        default=DEFAULT_MICRO_BATCH_TOKENS,
        help=f"tokens b·s per micro-batch (default {DEFAULT_MICRO_BATCH_TOKENS})",
    )
    run.add_argument(
        "--seq-length",
        type=int,
        help=f"sequence length s (default: the preset's maximum, else {DEFAULT_SEQ_LENGTH})",
    )
    groups = p.add_argument_group("GradVac groups")
    groups.add_argument("--groups", type=int, help="L parameter groups (replaces --granularity)")
    groups.add_argument(
        "--granularity", default="layer", metavar=_choices(GRANULARITIES), help="default layer"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def inputs_from_args(args: argparse.Namespace) -> PlanInputs:
    """Merge the preset (if any) with the flags; flags win."""
    sizes = model_sizes(args.model, args.vocab, args.kind, args.tp) if args.model else None

    def pick(flag: int | None, attribute: str) -> int | None:
        return flag if flag is not None else getattr(sizes, attribute, None)

    tp_rank_params = None
    if args.params is not None:
        params = parse_count(args.params, "--params")
    elif sizes is not None:
        params, tp_rank_params = sizes.params, sizes.params_per_tp_rank
    else:
        raise PlanError("params: give --params (e.g. 1.3B) or a --model preset")
    layers = pick(args.layers, "num_layers")
    hidden = pick(args.hidden, "hidden_size")
    heads = pick(args.heads, "num_attention_heads")
    activations = None
    if layers is not None and hidden is not None and heads is not None:
        seq_length = pick(args.seq_length, "max_sequence_length") or DEFAULT_SEQ_LENGTH
        activations = ActivationInputs(args.micro_batch_tokens, seq_length, hidden, heads, layers)
    groups = args.groups
    if groups is None:
        groups = num_groups(args.granularity, args.kind, layers)
    return PlanInputs(
        params=params,
        tasks=args.tasks,
        dp=args.dp,
        tp=args.tp,
        zero_stage=args.zero_stage,
        precision=args.precision,
        buffer_dtype=args.buffer_dtype,
        optimizer=args.optimizer,
        groups=groups,
        micro_batches_per_task=args.micro_batches_per_task,
        activations=activations,
        tp_rank_params=tp_rank_params,
        ffn_hidden_size=pick(args.ffn, "ffn_hidden_size"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, print the plan (table or ``--json``), return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = plan_inputs(inputs_from_args(args))
    except PlanError as error:
        parser.error(str(error))
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
