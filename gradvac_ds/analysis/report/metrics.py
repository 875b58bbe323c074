"""Clustering of a unit similarity matrix and its agreement with language families and distances.

All functions take a symmetric similarity matrix ``sim`` [U, U] of mean gradient cosines (diagonal
1, NaN where two units were never observed together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score


def filled_similarity(sim: np.ndarray) -> np.ndarray:
    """``sim`` symmetrised, with NaN off-diagonal entries set to the mean observed off-diagonal
    similarity (a neutral value, 0 if nothing was observed) and the diagonal set to 1."""
    one_sided = np.where(np.isfinite(sim), sim, sim.T)
    sim = (one_sided + one_sided.T) / 2
    off = ~np.eye(len(sim), dtype=bool)
    observed = sim[off & np.isfinite(sim)]
    filled = np.where(np.isfinite(sim), sim, observed.mean() if observed.size else 0.0)
    np.fill_diagonal(filled, 1.0)
    return filled


def similarity_linkage(sim: np.ndarray) -> np.ndarray:
    """Average-linkage hierarchy on the distance 1 - cosine (see :func:`filled_similarity`).

    Returns scipy's linkage matrix Z [U - 1, 4]; requires U >= 2.
    """
    if len(sim) < 2:
        raise ValueError(f"clustering needs at least 2 units, got {len(sim)}")
    distance = np.clip(1.0 - filled_similarity(sim), 0.0, None)
    np.fill_diagonal(distance, 0.0)
    return linkage(squareform(distance, checks=False), method="average")


@dataclass(frozen=True)
class FamilyAgreement:
    """Family structure in the similarities (over the units that have a family label).

    adjusted_rand_index: ARI of the dendrogram cut into as many clusters as families (None: < 2
    families or < 3 labelled units); intra/inter: mean similarity of same-/different-family pairs
    (None where there is no such pair); clusters: cluster id per labelled unit.
    """

    adjusted_rand_index: float | None
    intra_family_mean_similarity: float | None
    inter_family_mean_similarity: float | None
    clusters: dict[str, int]
    num_families: int
    units_used: list[str]


def _mean_or_none(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def family_agreement(
    sim: np.ndarray, units: Sequence[str], families: Sequence[str | None]
) -> FamilyAgreement:
    """Compare the hierarchy of ``sim`` [U, U] with family labels (None = unknown unit, left out)."""
    keep = [k for k, family in enumerate(families) if family is not None]
    labels = [families[k] for k in keep]
    sub = sim[np.ix_(keep, keep)]
    intra, inter = [], []
    for x in range(len(keep)):
        for y in range(x + 1, len(keep)):
            (intra if labels[x] == labels[y] else inter).append(float(sub[x, y]))
    num_families = len(set(labels))
    ari, clusters = None, {}
    if num_families >= 2 and len(keep) >= 3:
        cut = fcluster(similarity_linkage(sub), t=num_families, criterion="maxclust")
        ari = float(adjusted_rand_score(labels, cut))
        clusters = {units[k]: int(c) for k, c in zip(keep, cut, strict=True)}
    return FamilyAgreement(
        ari, _mean_or_none(intra), _mean_or_none(inter), clusters, num_families, [units[k] for k in keep]
    )


@dataclass(frozen=True)
class DistanceCorrelation:
    """Spearman correlation between pair similarity and language distance over ``num_pairs`` pairs."""

    rho: float | None
    p_value: float | None
    num_pairs: int
    similarities: list[float]
    distances: list[float]


def distance_correlation(sim: np.ndarray, pair_distance: np.ndarray) -> DistanceCorrelation:
    """Spearman rho/p between sim[a, b] and pair_distance[a, b] over a < b where both are finite.

    None when fewer than 3 pairs remain or either side is constant (rho undefined).
    """
    upper = np.triu_indices(len(sim), k=1)
    s, d = sim[upper], pair_distance[upper]
    ok = np.isfinite(s) & np.isfinite(d)
    s, d = s[ok], d[ok]
    rho = p_value = None
    if len(s) >= 3 and np.ptp(s) > 0 and np.ptp(d) > 0:
        result = spearmanr(s, d)
        rho, p_value = float(result.statistic), float(result.pvalue)
    return DistanceCorrelation(rho, p_value, len(s), s.tolist(), d.tolist())
