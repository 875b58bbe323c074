"""Adapters from DeepSpeed optimizer types to the reduced local gradient; see :func:`make_adapter`."""

from __future__ import annotations

import deepspeed
from packaging.version import Version

from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter

TESTED_DEEPSPEED = (Version("0.19.8"), Version("0.20"))
"""Adapters read DeepSpeed internals; versions outside [low, high) are refused."""


class UnsupportedEngineError(RuntimeError):
    """The DeepSpeed engine uses a configuration GradVac cannot hook into (yet)."""


def check_deepspeed_version(version: str = deepspeed.__version__) -> None:
    low, high = TESTED_DEEPSPEED
    if not low <= Version(version) < high:
        raise UnsupportedEngineError(
            f"gradvac_ds reads DeepSpeed internals that were verified on deepspeed >= {low}, < {high}; "
            f"found {version}. Install a tested version (pip install 'deepspeed>={low},<{high}')."
        )


def make_adapter(engine) -> GradientAdapter:
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
        return BF16OptimizerAdapter(opt, names)
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


__all__ = ["BufferLayout", "Fragment", "GradientAdapter", "UnsupportedEngineError", "make_adapter"]
