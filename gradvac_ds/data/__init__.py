"""Data for multilingual NMT: corpora, synthetic language families, vocabulary, batches, sampling.

Typical use by the training entry::

    bundle = build_data(DataConfig.from_dict(run_config["data"]))
    schedule = bundle.schedule(dp_rank, dp_world_size)
    for step_batches in schedule:      # {task: [TaskBatch, ...]} in global task order
        ...
"""

from gradvac_ds.data.batching import EncodedTask, TaskBatch, collate, iter_eval_batches, pack_batches
from gradvac_ds.data.builder import DataBundle, EvalSet, build_data, load_corpus, task_pairs
from gradvac_ds.data.config import DIRECTIONS, SOURCES, SPLITS, DataConfig
from gradvac_ds.data.corpus import FilterConfig, FilterStats, ParallelCorpus
from gradvac_ds.data.encoding import encode_corpus
from gradvac_ds.data.errors import DataConfigError, DataError, VocabularyError
from gradvac_ds.data.languages import check_language_code, parse_task_name, task_name
from gradvac_ds.data.readers import read_fairseq_dir, read_multiway_dir, read_tsv_files
from gradvac_ds.data.sampling import BatchingConfig, StepSchedule, temperature_probabilities
from gradvac_ds.data.synthetic import SyntheticConfig, SyntheticCorpus, generate_synthetic
from gradvac_ds.data.vocabulary import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    SharedVocabulary,
    VocabularyOptions,
    language_tag,
    train_shared_vocabulary,
)
from gradvac_ds.data.writers import write_fairseq_dir

__all__ = [
    "BOS_ID",
    "DIRECTIONS",
    "EOS_ID",
    "PAD_ID",
    "SOURCES",
    "SPLITS",
    "UNK_ID",
    "BatchingConfig",
    "DataBundle",
    "DataConfig",
    "DataConfigError",
    "DataError",
    "EncodedTask",
    "EvalSet",
    "FilterConfig",
    "FilterStats",
    "ParallelCorpus",
    "SharedVocabulary",
    "StepSchedule",
    "SyntheticConfig",
    "SyntheticCorpus",
    "TaskBatch",
    "VocabularyError",
    "VocabularyOptions",
    "build_data",
    "check_language_code",
    "collate",
    "encode_corpus",
    "generate_synthetic",
    "iter_eval_batches",
    "language_tag",
    "load_corpus",
    "pack_batches",
    "parse_task_name",
    "read_fairseq_dir",
    "read_multiway_dir",
    "read_tsv_files",
    "task_name",
    "task_pairs",
    "temperature_probabilities",
    "train_shared_vocabulary",
    "write_fairseq_dir",
]
