"""What the planner takes from a model of :mod:`gradvac_ds.training.modeling`: read off the model.

The model is built on the meta device, as one tensor-parallel rank holds it
(:func:`gradvac_ds.training.modeling.meta.build_meta_model`), and asked the questions the engine
asks: its GradVac groups come from :func:`gradvac_ds.grouping.group_parameters` on its named
parameters (as :class:`~gradvac_ds.engine.GradVacEngine` groups them), and its per-rank tensor
numels, in the one optimizer parameter group the application builds (``model.parameters()``), are
what the ZeRO partitions are cut from. Nothing is restated from the model's architecture.

The build needs a process without ``torch.distributed`` (it stands up a fake world of T ranks), so
:func:`model_layout` runs it in a fresh interpreter, ``python -m gradvac_ds.planning.model_layout
REQUEST``, which prints the layout as one JSON line; results are cached per request.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gradvac_ds.config import check_choice
from gradvac_ds.planning.errors import PlanError
from gradvac_ds.planning.inputs import ActivationInputs, PlanInputs, layout_of

ModelSpec = str | Path | Mapping[str, Any]
"""A preset name, a preset YAML path, or a model config mapping."""


@dataclass(frozen=True)
class ModelLayout:
    """One tensor-parallel rank's view of a model.

    name, kind, vocab_size, tp: what was built (``tp`` = T, the tensor-parallel size);
    params: P, the whole model's parameters (T = 1);
    optimizer_groups: per optimizer parameter group, the numels of its trainable tensors on one TP
      rank, in model order (sharded tensors count their shard, replicated ones in full);
    num_groups: L per granularity (``model``, ``enc_dec``, ``layer``, ``matrix``);
    hidden_size h, num_attention_heads a, num_layers (all Transformer layers, encoder + decoder),
    max_sequence_length s: the activation estimate's inputs.
    """

    name: str
    kind: str
    vocab_size: int
    tp: int
    params: int
    optimizer_groups: tuple[tuple[int, ...], ...]
    num_groups: dict[str, int]
    hidden_size: int
    num_attention_heads: int
    num_layers: int
    max_sequence_length: int

    @property
    def params_per_tp_rank(self) -> int:
        """Ψ: the trainable parameters one tensor-parallel rank holds."""
        return sum(sum(group) for group in self.optimizer_groups)

    def plan_inputs(
        self,
        tasks: int,
        granularity: str = "layer",
        *,
        micro_batch_tokens: int | None = None,
        seq_length: int | None = None,
        **options: Any,
    ) -> PlanInputs:
        """Planner inputs for K = ``tasks`` on this model at ``granularity``: P, T, L and the layout
        from the model; activations when ``micro_batch_tokens`` is given (``seq_length`` defaults to
        the model's maximum); ``options`` are the run's other :class:`PlanInputs` fields."""
        check_choice("granularity", granularity, list(self.num_groups))
        activations = None
        if micro_batch_tokens is not None:
            activations = ActivationInputs(
                micro_batch_tokens,
                self.max_sequence_length if seq_length is None else seq_length,
                self.hidden_size,
                self.num_attention_heads,
                self.num_layers,
            )
        return PlanInputs(
            params=self.params,
            tasks=tasks,
            tp=self.tp,
            groups=self.num_groups[granularity],
            activations=activations,
            layout=self.optimizer_groups,
            **options,
        )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelLayout:
        groups = tuple(tuple(int(n) for n in group) for group in values["optimizer_groups"])
        return cls(**{**values, "optimizer_groups": groups, "num_groups": dict(values["num_groups"])})


def _request(spec: ModelSpec, vocab_size: int, kind: str, tp: int) -> str:
    model = dict(spec) if isinstance(spec, Mapping) else str(spec)
    return json.dumps({"spec": model, "vocab_size": vocab_size, "kind": kind, "tp": tp}, sort_keys=True)


def model_layout(spec: ModelSpec, vocab_size: int, kind: str = "encdec", tp: int = 1) -> ModelLayout:
    """The layout of ``spec`` built with a vocabulary of ``vocab_size`` as ``kind`` on T = ``tp``.

    Errors of the model configuration (unknown preset, unknown kind, T not dividing the heads or the
    FFN, ...) are raised as :class:`PlanError` with the modeling package's message, which names the
    field; a failed build raises RuntimeError with the child's last output.
    """
    return _layout_of_request(_request(spec, vocab_size, kind, tp), repr(str(spec)))


@functools.lru_cache(maxsize=64)
def _layout_of_request(request: str, shown: str) -> ModelLayout:
    cmd = [sys.executable, "-m", "gradvac_ds.planning.model_layout", request]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"building model {shown} on the meta device failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise PlanError(f"model = {shown}: {answer['error']}")
    return ModelLayout.from_dict(answer)


def measure(spec: ModelSpec, vocab_size: int, kind: str, tp: int) -> ModelLayout:
    """Build the model on the meta device in this process and read its layout (the child's work)."""
    with warnings.catch_warnings():  # megatron-core warns on import about optional Apex/TE kernels
        warnings.simplefilter("ignore")
        from gradvac_ds.grouping import Granularity, group_parameters
        from gradvac_ds.training.modeling import MODEL_SPECS, count_parameters, resolve_config
        from gradvac_ds.training.modeling.meta import build_meta_model

        check_choice("kind", kind, tuple(MODEL_SPECS))
        cfg = resolve_config(spec)
        model = build_meta_model(cfg, vocab_size, kind, tp)
    named = list(model.named_parameters())
    return ModelLayout(
        name=cfg.name,
        kind=kind,
        vocab_size=vocab_size,
        tp=tp,
        params=count_parameters(cfg, vocab_size, kind),
        optimizer_groups=layout_of([[p for _, p in named]]),
        num_groups={g.value: group_parameters(named, g).num_groups for g in Granularity},
        hidden_size=cfg.hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        num_layers=sum(MODEL_SPECS[kind].num_layers(cfg)),
        max_sequence_length=cfg.max_sequence_length,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Child entry point: REQUEST (JSON: spec, vocab_size, kind, tp) -> one JSON line on stdout."""
    from gradvac_ds.errors import ConfigError

    (request,) = sys.argv[1:] if argv is None else argv
    values = json.loads(request)
    try:
        layout = measure(values["spec"], values["vocab_size"], values["kind"], values["tp"])
    except ConfigError as error:
        print(json.dumps({"error": str(error)}))
        return 0
    print(json.dumps(asdict(layout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
