"""Fixtures for the modeling tests: a one-process gloo world with megatron parallel_state (TP=1)."""

import dataclasses
import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import pytest
import torch
from distributed import init_single_process

from gradvac_ds.training.megatron import init_model_parallel
from gradvac_ds.training.modeling import ModelConfig, load_preset


@pytest.fixture(scope="session")
def megatron_tp1() -> None:
    """torch.distributed world of one process and megatron parallel_state with TP=1."""
    init_single_process("gloo")
    init_model_parallel(1)


@pytest.fixture(scope="session")
def tiny() -> ModelConfig:
    """The tiny preset without dropout, so that forwards are deterministic."""
    return dataclasses.replace(load_preset("tiny"), dropout=0.0, attention_dropout=0.0)


@pytest.fixture()
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(src, tgt) following the batch contract, vocabulary 50, pad 0, bos 1, eos 2, <2xx> 3."""
    src = torch.tensor([[3, 5, 6, 7, 8, 2], [3, 9, 10, 2, 0, 0], [3, 11, 2, 0, 0, 0]])
    tgt = torch.tensor([[1, 20, 21, 2, 0], [1, 22, 23, 24, 2], [1, 25, 2, 0, 0]])
    return src, tgt
