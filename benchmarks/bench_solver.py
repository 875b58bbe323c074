"""Solver speed: the vectorised coefficient-space solver against a per-group Python loop.

Both run on the same random Gram tensors G[L, K, K] with the same targets and task orders. The
baseline visits the pairs with scalar operations, one group at a time, the way per-group
implementations (LibMTL, TorchJD) loop. Prints the speed-up; last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from gradvac_ds.algorithm import draw_task_orders, solve


def per_group_loop(
    gram: torch.Tensor, targets: torch.Tensor, orders: torch.Tensor, beta: float
) -> torch.Tensor:
    """GradVac weights with one scalar loop per group (the baseline)."""
    num_groups, num_tasks, _ = gram.shape
    weights = torch.zeros(num_groups, num_tasks, dtype=torch.float64)
    targets = targets.clone()
    for l in range(num_groups):
        g = gram[l]
        for i in range(num_tasks):
            coef = torch.zeros(num_tasks, dtype=torch.float64)
            coef[i] = 1.0
            for j in orders[i].tolist():
                norm_i = math.sqrt(max((coef @ g @ coef).item(), 0.0))
                norm_j = math.sqrt(g[j, j].item())
                phi = (coef @ g[:, j]).item() / (norm_i * norm_j)
                t = targets[l, i, j].item()
                if phi < t:
                    coef[j] += (
                        norm_i
                        * (t * math.sqrt(1 - phi**2) - phi * math.sqrt(1 - t**2))
                        / (norm_j * math.sqrt(1 - t**2))
                    )
                targets[l, i, j] = (1 - beta) * t + beta * phi
            weights[l] += coef
    return weights


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.groups, args.tasks, 64, generator=gen, dtype=torch.float64)
    x += torch.randn(args.groups, 1, 64, generator=gen, dtype=torch.float64)
    gram = x @ x.transpose(1, 2)
    targets = torch.rand(args.groups, args.tasks, args.tasks, generator=gen, dtype=torch.float64) * 0.8
    orders = draw_task_orders(args.tasks, gen)
    active = torch.ones(args.tasks, dtype=torch.bool)

    def vectorised():
        return solve(gram, targets, mode="gradvac", beta=0.01, active=active, orders=orders).weights

    fast = vectorised()
    slow = per_group_loop(gram, targets, orders, 0.01)
    max_rel_diff = ((fast - slow).abs().max() / slow.abs().max()).item()
    t_fast = best_of(vectorised, args.repeats)
    t_slow = best_of(lambda: per_group_loop(gram, targets, orders, 0.01), max(1, args.repeats // 5))
    print(f"solver (vectorised):             {t_fast * 1e3:9.2f} ms")
    print(f"per-group scalar loop:           {t_slow * 1e3:9.2f} ms")
    print(f"speed-up: {t_slow / t_fast:.0f}x   max relative weight difference: {max_rel_diff:.1e}")
    print(
        json.dumps(
            {
                "speedup_vs_per_group_loop": round(t_slow / t_fast, 1),
                "L": args.groups,
                "K": args.tasks,
                "solver_ms": round(t_fast * 1e3, 3),
                "per_group_loop_ms": round(t_slow * 1e3, 3),
                "max_rel_weight_diff": max_rel_diff,
            }
        )
    )


if __name__ == "__main__":
    main()
