"""The rank state file of a checkpoint is read without running pickled code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from gradvac_ds.training.checkpointing import read_rank_state


class _Payload:
    """Unpickling this object with full pickle calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_payload_is_refused_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "payload_ran"
    torch.save({"data": {"step": 3}, "rng": _Payload(marker)}, tmp_path / "rank0.pt")
    with pytest.raises(pickle.UnpicklingError):
        read_rank_state(tmp_path, 0)
    assert not marker.exists()
    torch.load(tmp_path / "rank0.pt", weights_only=False)  # what a full unpickle would have done
    assert marker.exists()


def test_the_state_the_trainer_saves_reads_back(tmp_path: Path) -> None:
    state = {
        "data": {"step": 7, "order": [3, 1, 2], "name": "de-en"},
        "rng": {"torch": torch.get_rng_state()},
    }
    torch.save(state, tmp_path / "rank1.pt")
    loaded = read_rank_state(tmp_path, 1)
    assert loaded["data"] == state["data"] and torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
