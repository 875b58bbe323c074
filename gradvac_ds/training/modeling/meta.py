"""One tensor-parallel rank's model on the meta device, built in a process without a real world.

megatron-core sizes every sharded tensor from its tensor-parallel process group, so a model of
tensor-parallel size T can only be built where a group of T ranks exists. For shapes alone
(parameter names, per-rank shapes, megatron's ``tensor_model_parallel`` marks) no communication
is needed: :func:`build_meta_model` stands up torch's ``fake`` process-group backend (a world of T
ranks inside this one process, whose collectives do nothing), initialises megatron's
``parallel_state`` on it, builds the model on the meta device as rank 0 and tears both down again.
All T ranks hold shards of the same shapes (megatron divides evenly and pads the vocabulary to a
multiple of T), so rank 0 stands for every rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist
from megatron.core import parallel_state

from gradvac_ds.training.megatron import init_model_parallel
from gradvac_ds.training.modeling.config import ModelConfig, resolve_config
from gradvac_ds.training.modeling.registry import build_model, validate_build
from gradvac_ds.training.modeling.translation import TranslationModel


def build_meta_model(
    spec: str | Path | ModelConfig | Mapping[str, Any],
    vocab_size: int,
    kind: str = "encdec",
    tp_size: int = 1,
) -> TranslationModel:
    """The model tensor-parallel rank 0 of ``tp_size`` holds, with meta tensors (no storage).

    Arguments as for :func:`~gradvac_ds.training.modeling.registry.build_model`; they are validated
    (:class:`~gradvac_ds.training.modeling.config.ModelConfigError`) before any group exists.
    Refuses to run where ``torch.distributed`` is already initialised: the fake world would replace
    the caller's (run it in a fresh process, as :mod:`gradvac_ds.planning` does).
    """
    cfg = resolve_config(spec)
    validate_build(cfg, vocab_size, kind, tp_size)
    if dist.is_initialized():
        raise RuntimeError(
            "build_meta_model needs a process without torch.distributed (it builds under a fake "
            "world of tp_size ranks); call it before deepspeed.init_distributed or in a subprocess"
        )
    dist.init_process_group("fake", rank=0, world_size=tp_size, store=dist.HashStore())
    try:
        init_model_parallel(tp_size)
        return build_model(cfg, vocab_size, kind, device="meta")
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
