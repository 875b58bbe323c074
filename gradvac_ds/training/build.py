"""What one training mode is made of: the process groups, the network, AdamW with its LR schedule,
and the GradVac engine around them.

The network is the data's kind (a language model for ``data.source: monolingual``, a translation
model of ``model.kind`` otherwise), seeded by ``data.seed`` and created on the accelerator's current
device. The LR follows ``training.lr_schedule`` through a ``LambdaLR`` of
:func:`gradvac_ds.training.schedules.lr_multiplier` that DeepSpeed steps with the optimizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import deepspeed
import torch
from deepspeed import comm as dist
from megatron.core import parallel_state
from torch import nn

import gradvac_ds
from gradvac_ds.engine import GradVacEngine
from gradvac_ds.training import jit_ops, monitoring
from gradvac_ds.training.data import PreparedData
from gradvac_ds.training.errors import RunStopped
from gradvac_ds.training.megatron import MegatronMPU, init_model_parallel
from gradvac_ds.training.modeling import build_language_model, build_model
from gradvac_ds.training.reproducibility import make_deterministic
from gradvac_ds.training.run_config import RunConfig
from gradvac_ds.training.schedules import lr_multiplier


def setup_distributed(config: RunConfig) -> None:
    """Process groups from the launcher's environment (deepspeed, torchrun or SLURM), on the
    accelerator's backend (this rank's shm-op buffer name removed, see
    :func:`gradvac_ds.training.jit_ops.unlink_shm_buffer`), then deterministic kernels and
    megatron's tensor-parallel groups."""
    backend = deepspeed.get_accelerator().communication_backend_name()
    timeout = timedelta(minutes=config.training.dist_timeout_minutes)
    deepspeed.init_distributed(dist_backend=backend, timeout=timeout)
    dist.barrier()  # every rank has mapped its peers' shm-op buffers: their names can go
    jit_ops.unlink_shm_buffer(dist.get_rank())
    make_deterministic(config.training.threads, config.training.deterministic)
    init_model_parallel(config.model.tensor_parallel)


@contextmanager
def distributed(config: RunConfig) -> Iterator[None]:
    """:func:`setup_distributed` for the body, and every rank leaving together after it.

    On a clean end, or a :class:`~gradvac_ds.training.errors.RunStopped` (which every rank raises at
    the same point), the ranks meet at a barrier and destroy megatron's groups and every
    torch.distributed group. A process that exits with its gloo groups alive can abort at
    interpreter teardown, its worker threads still running (``terminate called without an active
    exception``, SIGABRT): a finished run would then end with a failed rank. Any other error leaves
    the groups as they are, since peers may still wait in a collective that a barrier would join.
    """
    setup_distributed(config)
    try:
        yield
    except RunStopped:
        leave_together()
        raise
    leave_together()


def leave_together() -> None:
    """The end of a rank's distributed work: a barrier, then megatron's groups and every
    torch.distributed group destroyed (see :func:`distributed`), so that no gloo thread outlives them."""
    dist.barrier()
    parallel_state.destroy_model_parallel()
    torch.distributed.destroy_process_group()


def device() -> torch.device:
    """The accelerator's current device (``cpu`` under ``DS_ACCELERATOR=cpu``)."""
    return torch.device(deepspeed.get_accelerator().current_device_name())


def build_network(config: RunConfig, data: PreparedData, on: torch.device | str) -> nn.Module:
    """The model the data trains, built on ``on`` from ``data.seed`` (megatron's parallel_state
    must be initialised)."""
    vocab_size, seed = len(data.vocabulary), config.data.seed
    if data.is_lm:
        return build_language_model(config.model.model_config(), vocab_size, seed=seed, device=on)
    return build_model(
        config.model.model_config(), vocab_size, config.model.kind, seed=seed,
        pad_id=data.vocabulary.pad_id, device=on,
    )  # fmt: skip


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.AdamW:
    """AdamW over every parameter with ``training.lr``, ``betas`` and ``weight_decay``."""
    training = config.training
    return torch.optim.AdamW(
        model.parameters(), lr=training.lr, betas=training.betas, weight_decay=training.weight_decay
    )


def build_engine(config: RunConfig, mode: str, data: PreparedData) -> GradVacEngine:
    """The GradVac engine of ``mode``: network, AdamW, LR schedule, the mode's DeepSpeed config
    (with its per-mode monitor folders) and megatron's groups as DeepSpeed's ``mpu``."""
    model = build_network(config, data, device())
    optimizer = build_optimizer(config, model)
    training = config.training
    schedule = lr_multiplier(
        training.lr_schedule,
        training.warmup_steps,
        training.steps,
        training.min_lr_ratio,
        training.decay_fraction,
    )
    engine, *_ = gradvac_ds.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
        config=monitoring.per_mode_monitors(config.deepspeed_config(mode, data.tasks), config.run_dir, mode),
        mpu=MegatronMPU(),
    )
    return engine
