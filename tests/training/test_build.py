"""gradvac_ds.training.build.distributed on 2 gloo ranks under torchrun: which ends leave together
(tests/workers/teardown_worker.py)."""

from __future__ import annotations

import pytest
from distributed import run_torchrun


@pytest.mark.parametrize(
    ("end", "raised", "destroyed"),
    [("clean", None, True), ("stopped", "Interrupted", True), ("error", "ValueError", False)],
)
def test_a_finished_or_stopped_run_destroys_its_groups_and_a_failing_one_keeps_them(
    end, raised, destroyed, tmp_path
):
    """A clean end and a RunStopped (raised by every rank at the same point) destroy torch's and
    megatron's groups before the process exits, so no gloo thread meets interpreter teardown; any
    other error keeps them, since a peer may still wait in a collective."""
    rows = run_torchrun("teardown_worker.py", 2, tmp_path / "out.jsonl", "--end", end, timeout=300)
    assert sorted(rows) == [f"{end}_rank0", f"{end}_rank1"]
    for row in rows.values():
        assert row["raised"] == raised and row["sum"] == 2.0
        assert row["initialized"] is not destroyed and row["megatron"] is not destroyed
