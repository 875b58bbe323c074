"""training.seeds: validated before anything starts; seeded() derives one seed's config and data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gradvac_ds.config import ConfigError
from gradvac_ds.training.run_config import RunConfig

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def test_seeds_default_to_none_and_load_as_a_tuple():
    assert RunConfig.load(DEMO).training.seeds == ()
    assert RunConfig.load(DEMO, {"training.seeds": [3, 1, 2]}).training.seeds == (3, 1, 2)


@pytest.mark.parametrize("seeds", [[1, 1], [-1], [1.5], [True], 3, "1,2"])
def test_bad_seeds_are_rejected_by_name(seeds):
    with pytest.raises(ConfigError, match=r"training.seeds(\[\d\])? = .* must be (a list|an integer)"):
        RunConfig.load(DEMO, {"training.seeds": seeds})


def test_seeded_config_sets_every_seed_and_the_folder():
    from gradvac_ds.training.trainer import seeded

    config = RunConfig.load(DEMO, {"run_dir": "runs/x", "training.seeds": [5, 6]})

    # seeded() only replaces the bundle's config field; a one-field dataclass stands in for it
    bundle = dataclasses.make_dataclass("Bundle", [("config", object)])(config.data)
    seed_config, seed_bundle = seeded(config, bundle, 6)
    assert seed_config.run_dir == str(Path("runs/x") / "seed6")
    assert seed_config.data.seed == 6 and seed_bundle.config.seed == 6
    assert seed_config.deepspeed["gradvac"]["seed"] == 6 and config.deepspeed["gradvac"]["seed"] == 0
    assert seed_config.data.vocab == config.data.vocab and seed_config.training == config.training
