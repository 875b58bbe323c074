"""Temperature mixing of unequal corpora, shared by the task sampler and the vocabulary text.

With n_k items in corpus k, q_k = n_k / sum_j n_j and p_k = q_k^(1/T) / sum_j q_j^(1/T): T = 1 keeps
the corpora's proportions, T -> inf makes them uniform, T = 5 (the usual multilingual choice)
up-weights the small ones. Pure Python: the vocabulary's encoding workers import it without torch.
"""

from collections.abc import Mapping


def temperature_probabilities(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """p_k proportional to (n_k / sum n)^(1/T), in the order of ``sizes``.

    Raises:
        ValueError: on an empty mapping, a non-positive size or a non-positive temperature.
    """
    if not sizes:
        raise ValueError("no tasks to sample from")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    bad = {task: n for task, n in sizes.items() if n <= 0}
    if bad:
        raise ValueError(f"tasks without training data: {bad}")
    total = sum(sizes.values())
    weights = {task: (n / total) ** (1.0 / temperature) for task, n in sizes.items()}
    norm = sum(weights.values())
    return {task: w / norm for task, w in weights.items()}


def temperature_quotas(sizes: Mapping[str, int], budget: int, temperature: float) -> dict[str, int]:
    """Integer shares B_k of a budget B with B_k ~ B p_k, at least 1 each.

    Rounded by largest remainder, so they sum to B unless lifting shares below one up to one takes
    them over it (a budget hardly larger than the number of corpora).
    """
    exact = {k: budget * p for k, p in temperature_probabilities(sizes, temperature).items()}
    quotas = {k: max(int(share), 1) for k, share in exact.items()}
    by_remainder = sorted(exact, key=lambda k: (int(exact[k]) - exact[k], k))
    for k in by_remainder[: max(budget - sum(quotas.values()), 0)]:
        quotas[k] += 1
    return quotas
