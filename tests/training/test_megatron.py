"""Topology: DeepSpeed's mpu shim, idempotent megatron initialisation, groups with and without megatron."""

import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import pytest
import torch.distributed as dist
from distributed import init_single_process
from megatron.core import parallel_state

from gradvac_ds.training.megatron import MegatronMPU, init_model_parallel, parallel_groups


@pytest.fixture(scope="module")
def world() -> None:
    init_single_process("gloo")
    init_model_parallel(1)


def test_mpu_shim(world: None) -> None:
    mpu = MegatronMPU()
    assert mpu.get_model_parallel_world_size() == 1 and mpu.get_model_parallel_rank() == 0
    assert mpu.get_data_parallel_group() is parallel_state.get_data_parallel_group()
    assert mpu.get_tensor_model_parallel_world_size() == 1
    with pytest.raises(AttributeError):
        mpu.no_such_function  # noqa: B018


def test_groups_from_megatron(world: None) -> None:
    groups = parallel_groups()
    assert groups.tp_size == 1
    assert groups.tensor_parallel is parallel_state.get_tensor_model_parallel_group()
    assert dist.get_world_size(groups.data_parallel) == 1


def test_plain_deepspeed_fallback(world: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_state, "model_parallel_is_initialized", lambda: False)
    groups = parallel_groups()
    assert (groups.data_parallel, groups.tensor_parallel, groups.tp_size) == (dist.group.WORLD, None, 1)


def test_init_model_parallel_errors(world: None) -> None:
    init_model_parallel(1)  # idempotent
    with pytest.raises(ValueError, match="tensor_parallel_size 2 must divide the world size 1"):
        init_model_parallel(2)
    with pytest.raises(ValueError, match="tensor_parallel_size must be a positive integer"):
        init_model_parallel(0)
