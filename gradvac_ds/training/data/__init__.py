"""Data for multilingual NMT: corpora, synthetic language families, vocabulary, batches, sampling.

Typical use by the training entry::

    bundle = build_data(DataConfig.from_dict(run_config["data"]))
    schedule = bundle.schedule(dp_rank, dp_world_size)
    for step_batches in schedule:      # {task: [TaskBatch, ...]} in global task order
        ...

The names below are imported lazily (PEP 562): a spawned encoding worker imports
``gradvac_ds.training.data.encoding`` and must not pay for importing torch. For static type checking,
import from the submodule named in ``_EXPORTS``.
"""

import importlib
from typing import Any

_EXPORTS = {
    "BOS_ID": "vocabulary",
    "BatchingConfig": "sampling",
    "DIRECTIONS": "config",
    "DataBundle": "builder",
    "DataConfig": "config",
    "DataConfigError": "errors",
    "DataError": "errors",
    "EOS_ID": "vocabulary",
    "EncodedTask": "batching",
    "EvalSet": "builder",
    "FilterConfig": "corpus",
    "FilterStats": "corpus",
    "PAD_ID": "vocabulary",
    "ParallelCorpus": "corpus",
    "SOURCES": "config",
    "SPLITS": "config",
    "SharedVocabulary": "vocabulary",
    "StepSchedule": "sampling",
    "SyntheticConfig": "synthetic",
    "SyntheticCorpus": "synthetic",
    "TaskBatch": "batching",
    "UNK_ID": "vocabulary",
    "VocabularyError": "errors",
    "VocabularyOptions": "vocabulary",
    "build_data": "builder",
    "check_language_code": "languages",
    "collate": "batching",
    "encode_corpus": "encoding",
    "generate_synthetic": "synthetic",
    "iter_eval_batches": "batching",
    "language_tag": "vocabulary",
    "load_corpus": "builder",
    "pack_batches": "batching",
    "parse_task_name": "languages",
    "read_fairseq_dir": "readers",
    "read_multiway_dir": "readers",
    "read_tsv_files": "readers",
    "task_name": "languages",
    "task_pairs": "builder",
    "temperature_probabilities": "temperature",
    "temperature_quotas": "temperature",
    "train_shared_vocabulary": "vocabulary",
    "write_fairseq_dir": "writers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import ``name`` from its submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradvac_ds.training.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gradvac_ds.training.data.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    """The public names, for ``dir()`` and tab completion."""
    return __all__
