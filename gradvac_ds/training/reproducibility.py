"""Bitwise-reproducible training on one machine: the same config and seed give the same losses at
every step, the same weights and the same BLEU.

What a run's numbers depend on besides its seeds, and how each is pinned:

* **Kernel choice and threading of the math libraries.** MKL picks code paths per CPU and may
  change its thread count while running; ``MKL_CBWR=AUTO`` (conditional numerical reproducibility
  on the best path of this CPU) and ``MKL_DYNAMIC=FALSE`` fix both. They are read when MKL loads,
  so :func:`set_library_environment` runs before torch is imported. cuBLAS needs
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for deterministic GEMMs. Values already set are kept.
* **Intra-op threads.** A reduction split over T threads sums in another order than over T'.
  ``training.threads`` fixes T per rank (None keeps ``OMP_NUM_THREADS`` or torch's default, which
  is stable on one machine).
* **Nondeterministic kernels** (atomics in scatter/index-add backward on GPUs, cuDNN autotuning):
  ``torch.use_deterministic_algorithms`` makes torch pick deterministic ones or raise naming the
  op; ``training.deterministic: false`` turns this off for speed.
* **The vocabulary**: SentencePiece's thread count is ``data.vocab.num_threads``, part of the
  vocabulary cache key (see :mod:`gradvac_ds.training.data.vocabulary`).

Runs with different seeds still differ: every random draw (initialisation, dropout, the step
schedule, GradVac's visiting orders) comes from the seeds.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

LIBRARY_ENVIRONMENT = {"MKL_CBWR": "AUTO", "MKL_DYNAMIC": "FALSE", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def set_library_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set each of :data:`LIBRARY_ENVIRONMENT` that ``environ`` does not set yet (before torch loads)."""
    for name, value in LIBRARY_ENVIRONMENT.items():
        environ.setdefault(name, value)


def make_deterministic(threads: int | None, deterministic: bool) -> None:
    """Fix torch's intra-op thread count (unless None) and its choice of deterministic kernels."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    # Deterministic mode also fills every new tensor with NaN (so that reading memory nobody wrote is
    # visible): a pass over each buffer DeepSpeed and the engine allocate, 7x the step time of the
    # demo on a CPU. Nothing here reads unwritten memory: allocation stays as it is.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
