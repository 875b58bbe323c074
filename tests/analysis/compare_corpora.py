"""Constructed test sets and systems for the comparison tests: a reference corpus and systems that
copy each reference word with a chosen error rate (so quality gaps are planted)."""

from __future__ import annotations

import random
from pathlib import Path

WORDS = "the a cat dog sat on mat house tree river big small red blue green old new".split()


def references(count: int = 200, seed: int = 0) -> list[str]:
    """``count`` sentences of 8-14 words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 14))) for _ in range(count)]


def system(refs: list[str], error: float, seed: int) -> list[str]:
    """Each reference word kept with probability 1 - error, else replaced by a random word."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() > error else rng.choice(WORDS) for w in s.split()) for s in refs]


def write_run(
    run_dir: Path, errors: dict[str, dict[str, float]], seeds: list[int], pairs: dict[str, list[str]]
) -> Path:
    """``run_dir/seed<s>/<mode>/translations/<pair>.hyp|.ref`` with error rate ``errors[mode][pair]``."""
    for seed in seeds:
        for k, (mode, by_pair) in enumerate(errors.items()):
            directory = run_dir / f"seed{seed}" / mode / "translations"
            directory.mkdir(parents=True)
            for p, (pair, refs) in enumerate(pairs.items()):
                hyps = system(refs, by_pair[pair], seed=1000 * seed + 10 * k + p)
                (directory / f"{pair}.hyp").write_text("".join(h + "\n" for h in hyps))
                (directory / f"{pair}.ref").write_text("".join(r + "\n" for r in refs))
    return run_dir
