"""Data for multilingual NMT and LM pretraining: readers, vocabulary, indexed datasets, batches, sampling.

Two stages, one data path::

    prepare_data(DataConfig.from_dict(run_config["data"]))  # gradvac-prepare, once per corpus
    data = open_prepared(config)                         # every rank, memory-mapped
    schedule = data.schedule(dp_rank, dp_world_size)
    for step_batches in schedule:      # {task: [micro-batch, ...]} in global task order
        ...

The names below are imported lazily (PEP 562): a spawned encoding worker imports
``gradvac_ds.training.data.encoding`` and must not pay for importing torch. For static type checking,
import from the submodule named in ``_EXPORTS``.
"""

import importlib
from typing import Any

_EXPORTS = {
    "BOS_ID": "vocabulary",
    "BatchingConfig": "config",
    "DIRECTIONS": "config",
    "DataConfig": "config",
    "DataConfigError": "errors",
    "DataError": "errors",
    "Encoder": "encoding",
    "EOS_ID": "vocabulary",
    "FilterConfig": "corpus",
    "FilterStats": "corpus",
    "IndexedWriter": "indexed",
    "LMBatch": "batching",
    "PAD_ID": "vocabulary",
    "PackedLMDataset": "batching",
    "PairDataset": "batching",
    "ParallelCorpus": "corpus",
    "PreparedData": "prepared",
    "SOURCES": "config",
    "SPLITS": "config",
    "SharedVocabulary": "vocabulary",
    "StepSchedule": "sampling",
    "SyntheticConfig": "synthetic",
    "SyntheticCorpus": "synthetic",
    "TaskBatch": "batching",
    "TestSet": "prepared",
    "UNK_ID": "vocabulary",
    "VocabularyError": "errors",
    "VocabularyOptions": "vocabulary",
    "VocabularySampler": "vocabulary",
    "check_language_code": "languages",
    "fairseq_source": "readers",
    "generate_synthetic": "synthetic",
    "iter_eval_batches": "batching",
    "language_tag": "vocabulary",
    "monolingual_source": "readers",
    "multiway_source": "readers",
    "open_indexed": "indexed",
    "open_prepared": "prepared",
    "pack_batches": "batching",
    "parse_task_name": "languages",
    "prepare_data": "prepare",
    "task_name": "languages",
    "temperature_probabilities": "temperature",
    "temperature_quotas": "temperature",
    "train_vocabulary": "vocabulary",
    "tsv_source": "readers",
    "write_fairseq_dir": "writers",
    "write_monolingual_dir": "writers",
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
