"""Everything that reads DeepSpeed internals: adapters from DeepSpeed optimizer types to the
reduced local gradient (:func:`make_adapter`), parameter facts (sharding, full sizes under ZeRO-3),
and the bookkeeping of a step GradVac skips (:func:`skip_step`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import deepspeed
import torch
from deepspeed.runtime.utils import is_model_parallel_parameter
from packaging.version import Version

from gradvac_ds.errors import UnsupportedEngineError
from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter

if TYPE_CHECKING:
    from gradvac_ds.comm import Comm

TESTED_DEEPSPEED = (Version("0.19.8"), Version("0.20"))
"""Adapters read DeepSpeed internals; versions outside [low, high) are refused."""


def is_tensor_parallel_parameter(param: torch.nn.Parameter) -> bool:
    """True for a parameter sharded over tensor-parallel ranks (megatron marks them; DeepSpeed's
    own test reads the mark)."""
    return bool(is_model_parallel_parameter(param))


def full_numel(param: torch.nn.Parameter) -> int:
    """Elements of the rank's whole parameter, also when ZeRO-3 has partitioned it away."""
    return int(getattr(param, "ds_numel", param.numel()))


def skip_step(engine) -> None:
    """Account for an optimizer step GradVac skips (a non-finite task gradient) the way DeepSpeed
    accounts for its own overflow skip: no optimizer or scheduler step, ``skipped_steps`` and the
    step/sample counters advance, ``was_step_applied()`` is False, and a dynamic fp16 loss scale
    backs off so that the next step can succeed."""
    scaler = getattr(engine.optimizer, "loss_scaler", None)
    if scaler is not None and getattr(scaler, "dynamic", False):
        scaler.update_scale(True)
    engine._step_applied = False
    engine.skipped_steps += 1
    engine.global_steps += 1
    engine.global_samples += engine.train_batch_size()


def check_deepspeed_version(version: str = deepspeed.__version__) -> None:
    low, high = TESTED_DEEPSPEED
    if not low <= Version(version) < high:
        raise UnsupportedEngineError(
            f"gradvac_ds reads DeepSpeed internals that were verified on deepspeed >= {low}, < {high}; "
            f"found {version}. Install a tested version (pip install 'deepspeed>={low},<{high}')."
        )


def make_adapter(engine, comm: Comm) -> GradientAdapter:
    """Pick the adapter for ``engine``'s optimizer; refuse what is not supported, with the reason."""
    from deepspeed.runtime.bf16_optimizer import BF16_Optimizer
    from deepspeed.runtime.pipe.engine import PipelineEngine
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    from gradvac_ds.zero.bf16 import BF16OptimizerAdapter
    from gradvac_ds.zero.stage0 import Zero0Adapter
    from gradvac_ds.zero.stage3 import Zero3Adapter
    from gradvac_ds.zero.stage12 import Zero12Adapter

    check_deepspeed_version()
    if isinstance(engine, PipelineEngine):
        raise UnsupportedEngineError(
            "the pipeline engine is not supported: GradVac needs one reduction per task"
        )
    if engine.zero_cpu_offload() or engine.zero_offload_param():
        raise UnsupportedEngineError(
            "ZeRO CPU/NVMe offload is not supported yet (zero_optimization.offload_optimizer / offload_param)"
        )
    if not engine.managed_gradient_accumulation():
        raise UnsupportedEngineError("managed_gradient_accumulation=false is not supported")
    opt = engine.optimizer
    names = {p: n for n, p in engine.module.named_parameters()}
    stage = engine.zero_optimization_stage()
    if isinstance(opt, DeepSpeedZeroOptimizer):
        return Zero12Adapter(opt, names)
    if isinstance(opt, BF16_Optimizer):
        return BF16OptimizerAdapter(opt, names, comm)
    if stage == 3:
        return Zero3Adapter(opt, names)
    if stage == 0:
        if engine.fp16_enabled():
            raise UnsupportedEngineError(
                "fp16 at ZeRO stage 0 is not supported: DeepSpeed 0.19.8 does not scale the loss there "
                "(upstream PR #8393); use ZeRO stage >= 1 or bf16"
            )
        params = [p for p in engine.module.parameters() if p.requires_grad]
        return Zero0Adapter(params, names)
    raise UnsupportedEngineError(f"optimizer {type(opt).__name__} at ZeRO stage {stage} is not supported")


__all__ = [
    "BufferLayout",
    "Fragment",
    "GradientAdapter",
    "UnsupportedEngineError",
    "full_numel",
    "is_tensor_parallel_parameter",
    "make_adapter",
    "skip_step",
]
