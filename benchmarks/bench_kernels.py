"""The Gram and combine kernels against the device's copy bandwidth, on one device.

For a task buffer ``X[K, n]`` (float32, one segment) it times, on ``deepspeed.get_accelerator()``'s
current device:

- ``copy``: ``Y.copy_(X)`` -- reads and writes K n elements; the memory-bandwidth yardstick;
- ``gram_fp32`` / ``gram_fp64``: :func:`gradvac_ds.gram.accumulate_gram` with float32 GEMM blocks
  summed in float64, and with float64 products;
- ``combine``: :func:`gradvac_ds.gram.combine_segments` -- reads K n, writes n elements.

Each kernel's effective bandwidth is (bytes it must read + write) / time, reported next to the copy's:
a kernel at ratio ~1 runs at memory speed (the Gram reads X once, so it can run at copy speed only if
it is not compute-bound: 2 K^2 n FLOPs). Also the max cosine error of the float32 Gram against the
float64 one. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from gradvac_ds.gram import Segment, accumulate_gram, combine_segments


def timed(fn, repeats: int, sync) -> float:
    """Best wall seconds of ``repeats`` calls after one warm-up (device synchronised around each)."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import deepspeed

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--numel", type=int, default=50_000_000, help="elements per task row")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    accel = deepspeed.get_accelerator()
    device = torch.device(accel.current_device_name())
    sync = accel.synchronize
    k, n = args.tasks, args.numel
    gen = torch.Generator(device=device).manual_seed(0)
    shared = torch.randn(n, generator=gen, device=device)
    x = 0.5 * shared + torch.randn(k, n, generator=gen, device=device)
    y = torch.empty_like(x)
    segments = [Segment(0, n, 0)]
    weights = torch.rand(1, k, dtype=torch.float64)
    out = torch.empty(n, device=device)
    gram32 = torch.zeros(1, k, k, dtype=torch.float64, device=device)
    gram64 = torch.zeros(1, k, k, dtype=torch.float64, device=device)

    def gram_fp32():
        gram32.zero_()
        accumulate_gram(gram32, x, segments, torch.float32)

    def gram_fp64():
        gram64.zero_()
        accumulate_gram(gram64, x, segments, torch.float64)

    seconds = {
        "copy": timed(lambda: y.copy_(x), args.repeats, sync),
        "gram_fp32": timed(gram_fp32, args.repeats, sync),
        "gram_fp64": timed(gram_fp64, args.repeats, sync),
        "combine": timed(lambda: combine_segments(x, segments, weights, out), args.repeats, sync),
    }
    moved = {
        "copy": 2 * k * n * 4,
        "gram_fp32": k * n * 4,
        "gram_fp64": k * n * 4,
        "combine": (k + 1) * n * 4,
    }
    bandwidth = {name: moved[name] / s / 1e9 for name, s in seconds.items()}

    def cosine(g: torch.Tensor) -> torch.Tensor:
        d = g[0].diagonal().sqrt()
        return g[0] / d[:, None] / d[None, :]

    cos_err = (cosine(gram32) - cosine(gram64)).abs().max().item()
    print(f"device {device}, K={k}, n={n:,} float32 elements per task")
    print(f"{'kernel':>10} {'ms':>9} {'GB/s':>8} {'vs copy':>8}")
    for name in seconds:
        ratio = bandwidth[name] / bandwidth["copy"]
        print(f"{name:>10} {1e3 * seconds[name]:9.2f} {bandwidth[name]:8.1f} {ratio:8.3f}")
    print(f"max |cos fp32-block Gram - cos fp64 Gram| = {cos_err:.2e}")
    result = {
        "device": str(device),
        "K": k,
        "numel": n,
        "ms": {name: round(1e3 * s, 3) for name, s in seconds.items()},
        "gb_per_s": {name: round(b, 2) for name, b in bandwidth.items()},
        "bandwidth_vs_copy": {name: round(b / bandwidth["copy"], 4) for name, b in bandwidth.items()},
        "gram_fp32_over_fp64_time": round(seconds["gram_fp32"] / seconds["gram_fp64"], 4),
        "max_cosine_error_fp32_gram": cos_err,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
