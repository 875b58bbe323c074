"""Greedy and beam-search decoding (real tiny megatron models and a scripted scorer) and sacreBLEU."""

import dataclasses
import math
import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import pytest
import torch
from distributed import init_single_process

from gradvac_ds.training.evaluation import (
    SpecialTokens,
    beam_search,
    greedy_decode,
    score_by_pair,
    score_corpus,
)
from gradvac_ds.training.megatron import init_model_parallel
from gradvac_ds.training.modeling import MODEL_SPECS, DecodingState, build_model, load_preset

SPECIAL = SpecialTokens(bos=1, eos=2, pad=0)
SRC = torch.tensor([[3, 5, 6, 7, 8, 2], [3, 9, 10, 2, 0, 0], [4, 11, 2, 0, 0, 0], [4, 12, 13, 14, 2, 0]])


@pytest.fixture(scope="module")
def megatron() -> None:
    init_single_process("gloo")
    init_model_parallel(1)


class ScriptedScorer:
    """Next-token distributions given per prefix (tokens after bos); V = 5: pad bos eos a=3 b=4."""

    def __init__(
        self, table: dict[tuple[int, ...], list[float]], default: tuple[float, ...] = (0, 0, 0.9, 0.05, 0.05)
    ) -> None:
        self.table, self.default = table, list(default)
        self.training = False

    def train(self, mode: bool = True) -> "ScriptedScorer":
        self.training = mode
        return self

    def begin_decoding(self, src: torch.Tensor) -> DecodingState:
        return DecodingState(src)

    def max_prefix_length(self, state: DecodingState) -> int:
        return 100

    def next_token_logits(self, state: DecodingState, prefix: torch.Tensor) -> torch.Tensor:
        rows = [self.table.get(tuple(p[1:]), self.default) for p in prefix.tolist()]
        return torch.tensor(rows).clamp(min=1e-9).log()


def test_beam_finds_what_greedy_misses() -> None:
    scorer = ScriptedScorer(
        {(): [0, 0, 0, 0.6, 0.4], (3,): [0, 0, 0.34, 0.33, 0.33], (4,): [0, 0, 0.95, 0.025, 0.025]}
    )
    src = torch.tensor([[3, 2]])
    assert greedy_decode(scorer, src, SPECIAL, 5) == [[3]]  # p = 0.6 * 0.34
    assert beam_search(scorer, src, SPECIAL, 5, beam_size=2, length_penalty=0.0) == [[4]]  # p = 0.4 * 0.95


def test_length_penalty() -> None:
    scorer = ScriptedScorer({(): [0, 0, 0.55, 0.45, 0], (3,): [0, 0, 0.9, 0.05, 0.05]})
    src = torch.tensor([[3, 2]])
    # log .55 = -0.60 (1 token) vs (log .45 + log .9) = -0.90 over 2 tokens = -0.45 per token
    assert beam_search(scorer, src, SPECIAL, 5, beam_size=2, length_penalty=0.0) == [[]]
    assert beam_search(scorer, src, SPECIAL, 5, beam_size=2, length_penalty=1.0) == [[3]]


def test_max_length_forces_eos() -> None:
    scorer = ScriptedScorer({}, default=(0, 0, 0, 0.6, 0.4))  # eos only when forced
    src = torch.tensor([[3, 2]])
    assert greedy_decode(scorer, src, SPECIAL, 4) == [[3, 3, 3]]
    assert beam_search(scorer, src, SPECIAL, 4, beam_size=2) == [[3, 3, 3]]


@pytest.mark.parametrize("kind", list(MODEL_SPECS))
def test_beam_one_equals_greedy_on_real_models(megatron: None, kind: str) -> None:
    cfg = dataclasses.replace(load_preset("tiny"), dropout=0.0, attention_dropout=0.0)
    model = build_model(cfg, 40, kind, seed=7)
    model.train()
    greedy = greedy_decode(model, SRC, SPECIAL, max_length=8)
    assert model.training  # mode restored
    for penalty in (0.0, 1.0):
        assert beam_search(model, SRC, SPECIAL, max_length=8, beam_size=1, length_penalty=penalty) == greedy
    assert all(len(h) <= 7 and SPECIAL.eos not in h and SPECIAL.pad not in h for h in greedy)
    assert len(beam_search(model, SRC, SPECIAL, max_length=8, beam_size=4)) == len(SRC)


def test_decoding_argument_errors(megatron: None) -> None:
    model = build_model("tiny", 40, "decoder")
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        greedy_decode(model, SRC, SPECIAL, 0)
    with pytest.raises(ValueError, match="beam_size must be a positive integer"):
        beam_search(model, SRC, SPECIAL, 5, beam_size=0)
    with pytest.raises(ValueError, match="no room for target tokens"):
        greedy_decode(model, torch.ones(1, 128, dtype=torch.long), SPECIAL, 5)


def test_perfect_hypotheses_score_100() -> None:
    refs = ["The cat sat on the mat.", "A quick brown fox jumps over the lazy dog."]
    scores = score_corpus(refs, refs)
    assert scores.bleu == pytest.approx(100.0) and scores.chrf == pytest.approx(100.0)
    assert scores.bleu_signature.startswith("nrefs:1|") and "tok:13a" in scores.bleu_signature
    assert "nc:6" in scores.chrf_signature and scores.sentences == 2


def test_scores_per_pair() -> None:
    refs = ["Das ist ein kleiner Test.", "Noch ein Satz hier."]
    result = score_by_pair(
        {"en-de": (refs, refs), "en-fr": (["x y z", "u v w"], ["le chat noir", "un chien"])}
    )
    assert result["en-de"].bleu == pytest.approx(100.0)
    assert result["en-fr"].bleu < 1.0 and 0.0 <= result["en-fr"].chrf < 20.0
    with pytest.raises(ValueError, match="differ in length"):
        score_corpus(["a"], ["a", "b"])
    assert not math.isnan(result["en-fr"].chrf)
