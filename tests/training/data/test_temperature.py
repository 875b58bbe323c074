"""Temperature probabilities and integer quotas."""

import pytest

from gradvac_ds.training.data import temperature_probabilities, temperature_quotas

SIZES = {"aa-en": 4000, "bb-en": 1000, "cc-en": 400, "dd-en": 100}


def test_temperature_probabilities_formula() -> None:
    p = temperature_probabilities(SIZES, 5.0)
    total = sum(SIZES.values())
    raw = {k: (n / total) ** 0.2 for k, n in SIZES.items()}
    assert p == pytest.approx({k: v / sum(raw.values()) for k, v in raw.items()})
    assert temperature_probabilities(SIZES, 1.0) == pytest.approx({k: n / total for k, n in SIZES.items()})
    assert max(temperature_probabilities(SIZES, 1000.0).values()) < 0.26
    with pytest.raises(ValueError, match="tasks without training data"):
        temperature_probabilities({"aa-en": 0}, 5.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        temperature_probabilities(SIZES, 0.0)


@pytest.mark.parametrize("budget", [4, 17, 5500, 12345])
@pytest.mark.parametrize("temperature", [1.0, 5.0, 1e6])
def test_quotas_fill_the_budget_and_round_the_exact_shares(budget: int, temperature: float) -> None:
    quotas = temperature_quotas(SIZES, budget, temperature)
    assert list(quotas) == list(SIZES)
    shares = temperature_probabilities(SIZES, temperature)
    lifted = sum(1 for p in shares.values() if budget * p < 1)
    assert budget <= sum(quotas.values()) <= budget + lifted
    for k, p in shares.items():
        assert quotas[k] >= 1 and abs(quotas[k] - budget * p) < 1


def test_temperature_one_with_the_whole_corpus_as_budget_keeps_the_sizes() -> None:
    assert temperature_quotas(SIZES, sum(SIZES.values()), 1.0) == SIZES


def test_every_corpus_gets_one_even_below_its_share() -> None:
    assert temperature_quotas({"big": 10**6, "tiny": 1}, 2, 1.0) == {"big": 1, "tiny": 1}
