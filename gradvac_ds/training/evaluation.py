"""Decoding (greedy, beam search) with the translation models, and sacreBLEU scoring per language pair.

Decoding works on token ids with any model that implements ``begin_decoding``,
``max_prefix_length`` and ``next_token_logits`` (:class:`gradvac_ds.training.modeling.TranslationModel`);
the full-vocabulary logits it returns are already gathered over tensor-parallel ranks, so every
rank of a tensor-parallel group runs the same search and gets the same output.

``max_length`` counts generated tokens including eos; at the last allowed step eos is forced (as
fairseq does), so every hypothesis ends. Returned hypotheses exclude bos and eos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from sacrebleu.metrics import BLEU, CHRF
from torch import Tensor

from gradvac_ds.training.modeling.translation import DecodingState


class Decodable(Protocol):
    """What the decoders need from a model (TranslationModel provides it)."""

    training: bool

    def train(self, mode: bool = True) -> object: ...
    def begin_decoding(self, src: Tensor) -> DecodingState: ...
    def max_prefix_length(self, state: DecodingState) -> int: ...
    def next_token_logits(self, state: DecodingState, prefix: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the special tokens the decoders need."""

    bos: int
    eos: int
    pad: int


def _next_log_probs(
    model: Decodable, state: DecodingState, prefix: Tensor, tokens: SpecialTokens, last_step: bool
) -> Tensor:
    """[N, V] float32 log-probabilities; pad is never generated and eos is forced on the last step."""
    log_probs = torch.log_softmax(model.next_token_logits(state, prefix).float(), dim=-1)
    log_probs[:, tokens.pad] = float("-inf")
    if last_step:
        forced = torch.full_like(log_probs, float("-inf"))
        forced[:, tokens.eos] = log_probs[:, tokens.eos]
        log_probs = forced
    return log_probs


def _check_decoding_args(src: Tensor, max_length: int, beam_size: int = 1) -> None:
    if not isinstance(src, Tensor) or src.dim() != 2:
        raise ValueError(f"src must be a token tensor [batch, length], got {getattr(src, 'shape', src)!r}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")


def _decoding_steps(model: Decodable, state: DecodingState, max_length: int) -> int:
    """Steps allowed by ``max_length`` and by the model's positional embeddings for this source."""
    room = model.max_prefix_length(state)
    if room < 1:
        raise ValueError("the source batch leaves no room for target tokens within max_sequence_length")
    return min(max_length, room)


def _strip(tokens: list[int], special: SpecialTokens) -> list[int]:
    """Tokens before the first eos (bos already excluded)."""
    return tokens[: tokens.index(special.eos)] if special.eos in tokens else tokens


@torch.no_grad()
def greedy_decode(model: Decodable, src: Tensor, special: SpecialTokens, max_length: int) -> list[list[int]]:
    """Batched greedy decoding: at each step take the most probable token for every unfinished row.

    Args:
        src: [B, Ls] source batch (same contract as training).
        max_length: most generated tokens per sentence, eos included.
    Returns:
        B token-id lists without bos/eos.
    """
    _check_decoding_args(src, max_length)
    was_training = model.training
    model.train(False)
    try:
        state = model.begin_decoding(src)
        steps = _decoding_steps(model, state, max_length)
        prefix = torch.full((src.size(0), 1), special.bos, dtype=src.dtype, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for step in range(steps):
            log_probs = _next_log_probs(model, state, prefix, special, step == steps - 1)
            token = log_probs.argmax(dim=-1).masked_fill(done, special.pad)
            prefix = torch.cat([prefix, token[:, None]], dim=1)
            done |= token == special.eos
            if bool(done.all()):
                break
    finally:
        model.train(was_training)
    return [_strip(row[1:], special) for row in prefix.tolist()]


@torch.no_grad()
def beam_search(
    model: Decodable,
    src: Tensor,
    special: SpecialTokens,
    max_length: int,
    beam_size: int,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Batched beam search with length normalisation.

    Each sentence keeps ``beam_size`` live hypotheses scored by summed log-probability. Per step the
    best ``2 * beam_size`` extensions are ranked; an eos extension ranked within the first
    ``beam_size`` finishes a hypothesis with final score ``logp / length ** length_penalty`` (length
    counts eos), the best ``beam_size`` non-eos extensions live on. A sentence stops when it has
    ``beam_size`` finished hypotheses; the best final score wins. With ``beam_size=1`` this is
    exactly :func:`greedy_decode`.
    """
    _check_decoding_args(src, max_length, beam_size)
    batch, k = src.size(0), beam_size
    was_training = model.training
    model.train(False)
    try:
        state = model.begin_decoding(src).repeat_interleave(k)
        steps = _decoding_steps(model, state, max_length)
        prefix = torch.full((batch * k, 1), special.bos, dtype=src.dtype, device=src.device)
        scores = torch.full((batch, k), float("-inf"), device=src.device)
        scores[:, 0] = 0.0
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
        for step in range(steps):
            log_probs = _next_log_probs(model, state, prefix, special, step == steps - 1)
            vocab = log_probs.size(-1)
            candidates = (scores.reshape(-1, 1) + log_probs).reshape(batch, k * vocab)
            top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
            origin, token = top_index // vocab, top_index % vocab
            _collect_finished(finished, prefix, top_scores, origin, token, special, k, length_penalty)
            if all(len(f) >= k for f in finished):
                break
            alive = top_scores.masked_fill(token == special.eos, float("-inf")).topk(k, dim=1)
            scores = alive.values
            parent = origin.gather(1, alive.indices)
            rows = (torch.arange(batch, device=src.device)[:, None] * k + parent).reshape(-1)
            prefix = torch.cat([prefix[rows], token.gather(1, alive.indices).reshape(-1, 1)], dim=1)
    finally:
        model.train(was_training)
    return [max(f, key=lambda item: item[0])[1] for f in finished]


def _collect_finished(
    finished: list[list[tuple[float, list[int]]]],
    prefix: Tensor,
    top_scores: Tensor,
    origin: Tensor,
    token: Tensor,
    special: SpecialTokens,
    k: int,
    length_penalty: float,
) -> None:
    """Record eos extensions ranked within the first k of each unfinished sentence."""
    hits = ((token[:, :k] == special.eos) & torch.isfinite(top_scores[:, :k])).nonzero().tolist()
    for sentence, rank in hits:
        if len(finished[sentence]) >= k:
            continue
        hypothesis = prefix[sentence * k + int(origin[sentence, rank]), 1:].tolist()
        length = len(hypothesis) + 1
        finished[sentence].append((float(top_scores[sentence, rank]) / length**length_penalty, hypothesis))


@dataclass(frozen=True)
class PairScores:
    """Corpus scores of one language pair with the sacreBLEU signatures that make them reproducible;
    ``exact_match`` is the fraction of hypotheses identical to their reference (sentence accuracy)."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    sentences: int
    exact_match: float


def score_corpus(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> PairScores:
    """Corpus BLEU (sacreBLEU, ``tokenize``), chrF (character 6-grams, β=2) and the exact-match rate
    of detokenised text."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses and references differ in length: {len(hypotheses)} vs {len(references)}"
        )
    if not hypotheses:
        raise ValueError("cannot score an empty corpus")
    bleu, chrf = BLEU(tokenize=tokenize), CHRF()
    refs = [list(references)]
    return PairScores(
        bleu=bleu.corpus_score(list(hypotheses), refs).score,
        chrf=chrf.corpus_score(list(hypotheses), refs).score,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        sentences=len(hypotheses),
        exact_match=sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(hypotheses),
    )


def score_by_pair(
    outputs: Mapping[str, tuple[Sequence[str], Sequence[str]]], tokenize: str = "13a"
) -> dict[str, PairScores]:
    """Score ``{pair: (hypotheses, references)}`` pair by pair (e.g. ``"en-de"``)."""
    return {pair: score_corpus(hyps, refs, tokenize) for pair, (hyps, refs) in outputs.items()}
