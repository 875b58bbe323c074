"""TP=2 (two gloo processes) against TP=1 built from the same seed: loss, full gradients, decoding,
per-rank parameter counts and the topology seen by the GradVac engine."""

import dataclasses
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gradvac_ds.training.evaluation import SpecialTokens, beam_search, greedy_decode
from gradvac_ds.training.megatron import MegatronMPU, init_model_parallel, parallel_groups
from gradvac_ds.training.modeling import build_model, count_parameters, load_preset
from gradvac_ds.zero import is_tensor_parallel_parameter

KINDS = ("encdec", "decoder")
VOCAB = 60  # padded to 64 rows for TP=1 and TP=2 alike (tiny: make_vocab_size_divisible_by 8)
SEED = 11
SPECIAL = SpecialTokens(bos=1, eos=2, pad=0)
SRC = torch.tensor([[3, 5, 6, 7, 8, 2], [3, 9, 10, 2, 0, 0], [4, 11, 2, 0, 0, 0]])
TGT = torch.tensor([[1, 20, 21, 2, 0], [1, 22, 23, 24, 2], [1, 25, 2, 0, 0]])


def _config():
    return dataclasses.replace(load_preset("tiny"), dropout=0.0, attention_dropout=0.0)


def _run(kind: str) -> dict:
    """Loss, full (TP-gathered) gradients, decodes and local parameter count of one model."""
    model = build_model(_config(), VOCAB, kind, seed=SEED)
    loss = model(SRC, TGT)
    loss.backward()
    group = parallel_groups().tensor_parallel
    grads = {}
    for name, p in model.named_parameters():
        grad = p.grad
        if is_tensor_parallel_parameter(p):
            shards = [torch.empty_like(grad) for _ in range(dist.get_world_size(group))]
            dist.all_gather(shards, grad.contiguous(), group=group)
            grad = torch.cat(shards, dim=p.partition_dim)
        grads[name] = grad
    return {
        "loss": loss.detach(),
        "grads": grads,
        "greedy": greedy_decode(model, SRC, SPECIAL, max_length=6),
        "beam": beam_search(model, SRC, SPECIAL, max_length=6, beam_size=3),
        "numel": sum(p.numel() for p in model.parameters()),
    }


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    init_model_parallel(2)
    groups = parallel_groups()
    mpu = MegatronMPU()
    topology = (
        groups.tp_size,
        dist.get_world_size(groups.data_parallel),
        mpu.get_model_parallel_world_size(),
        mpu.get_model_parallel_rank(),
        mpu.get_data_parallel_world_size(),
    )
    results = {kind: _run(kind) for kind in KINDS}
    torch.save({"topology": topology, "results": results}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def tp2(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("tp2")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    mp.spawn(_worker, args=(port, str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def test_topology(tp2: list[dict]) -> None:
    # (tp size, dp group size, model-parallel size, model-parallel rank, dp size) per rank
    assert [r["topology"] for r in tp2] == [(2, 1, 2, 0, 1), (2, 1, 2, 1, 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_tp2_equals_tp1(megatron_tp1: None, tp2: list[dict], kind: str) -> None:
    want = _run(kind)
    for rank_result in tp2:
        got = rank_result["results"][kind]
        torch.testing.assert_close(got["loss"], want["loss"], rtol=1e-5, atol=0)
        assert got["grads"].keys() == want["grads"].keys()
        flat_got = torch.cat([g.reshape(-1) for g in got["grads"].values()])
        flat_want = torch.cat([g.reshape(-1) for g in want["grads"].values()])
        assert ((flat_got - flat_want).norm() / flat_want.norm()).item() < 1e-5
        for name, grad in want["grads"].items():
            torch.testing.assert_close(
                got["grads"][name],
                grad,
                rtol=1e-5,
                atol=1e-5 * grad.abs().max().item(),
                msg=lambda m, n=name: f"{n}: {m}",
            )
        assert got["greedy"] == want["greedy"]
        assert got["beam"] == want["beam"]
        assert got["numel"] == count_parameters(_config(), VOCAB, kind, tp_size=2)
