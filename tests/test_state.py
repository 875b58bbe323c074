"""The EMA target state and its checkpoint form."""

from __future__ import annotations

import pytest
import torch

from gradvac_ds.state import GradVacState, StateMismatchError


def test_fixed_tasks_round_trip_and_mismatch():
    state = GradVacState(["g0", "g1"], ["de-en", "fr-en"])
    state.targets[1, 0, 1] = 0.25
    state.step = 7
    saved = state.state_dict()
    fresh = GradVacState(["g0", "g1"], ["de-en", "fr-en"])
    fresh.load_state_dict(saved)
    assert torch.equal(fresh.targets, state.targets) and fresh.step == 7
    with pytest.raises(StateMismatchError, match="tasks"):
        GradVacState(["g0", "g1"], ["de-en", "es-en"]).load_state_dict(saved)
    with pytest.raises(StateMismatchError, match="granularity"):
        GradVacState(["model"], ["de-en", "fr-en"]).load_state_dict(saved)
    with pytest.raises(KeyError, match="es-en"):
        fresh.task_index("es-en")


def test_discovery_grows_and_adopts_saved_tasks():
    state = GradVacState(["g"], discover=True)
    assert state.task_index("a") == 0 and state.task_index("b") == 1 and state.task_index("a") == 0
    state.targets[0, 0, 1] = 0.5
    state.task_index("c")
    assert (
        state.targets.shape == (1, 3, 3) and state.targets[0, 0, 1] == 0.5 and state.targets[0, 2].eq(0).all()
    )
    resumed = GradVacState(["g"], discover=True)
    resumed.task_index("a")
    resumed.load_state_dict(state.state_dict())
    assert resumed.task_names == ["a", "b", "c"]
    other = GradVacState(["g"], discover=True)
    other.task_index("z")
    with pytest.raises(StateMismatchError):
        other.load_state_dict(state.state_dict())
