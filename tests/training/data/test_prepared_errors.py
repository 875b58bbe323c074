"""Bad prepared data: every fault gives a DataError naming the file, before any process group starts.

Each test corrupts a copy of one small prepared directory in one way; the untouched copy opens.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch.distributed

from gradvac_ds.training.data import DataConfig, DataError, open_prepared, prepare_data

SETTINGS = {
    "languages": ["qaa"],
    "encode_workers": 1,
    "vocab": {"vocab_size": 200},
    "synthetic": {"num_families": 1, "languages_per_family": 1, "train_sentences": 120, "valid_sentences": 10,
                  "test_sentences": 10, "lexicon_size": 80, "seed": 3},
}  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    prepare_data(
        DataConfig.from_dict({**SETTINGS, "cache_dir": str(root / "cache"), "prepared": str(root / "p")})
    )
    return root / "p"


@pytest.fixture
def copy(pristine: Path, tmp_path: Path) -> tuple[Path, DataConfig]:
    target = tmp_path / "p"
    shutil.copytree(pristine, target)
    return target, DataConfig.from_dict(
        {**SETTINGS, "cache_dir": str(tmp_path / "cache"), "prepared": str(target)}
    )


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def test_untouched_copy_opens(copy) -> None:
    _directory, config = copy
    assert open_prepared(config).tasks == ["qaa-en"]


@pytest.mark.parametrize("cut", [1, 1000])
def test_truncated_bin(copy, cut: int) -> None:
    directory, config = copy
    path = directory / "train.qaa-en.bin"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(
        DataError, match=rf"{path}: \d+ bytes, but train\.qaa-en\.idx describes \d+: .*truncated"
    ):
        open_prepared(config)


def test_bin_with_extra_bytes(copy) -> None:
    directory, config = copy
    path = directory / "valid.qaa-en.bin"
    path.write_bytes(path.read_bytes() + b"\0\0")
    with pytest.raises(DataError, match=rf"{path}: "):
        open_prepared(config)


def test_corrupt_idx_header(copy) -> None:
    directory, config = copy
    path = directory / "train.qaa-en.idx"
    path.write_bytes(b"GARBAGE!!" + path.read_bytes()[9:])
    with pytest.raises(DataError, match=rf"{path}: not a megatron-core index file"):
        open_prepared(config)


def test_truncated_idx(copy) -> None:
    directory, config = copy
    path = directory / "test.qaa-en.idx"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=rf"{path}: \d+ bytes, but its header .* needs \d+"):
        open_prepared(config)


def test_missing_idx(copy) -> None:
    directory, config = copy
    (directory / "train.qaa-en.idx").unlink()
    with pytest.raises(DataError, match=r"train\.qaa-en\.idx: missing \(re-run gradvac-prepare\)"):
        open_prepared(config)


def test_document_count_differs_from_the_manifest(copy) -> None:
    directory, config = copy
    manifest = _manifest(directory)
    manifest["datasets"]["qaa-en"]["train"]["documents"] += 1
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"train\.qaa-en\.idx: 120 documents .* the manifest says 121"):
        open_prepared(config)


def test_missing_and_invalid_manifest(copy) -> None:
    directory, config = copy
    (directory / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json: not valid JSON"):
        open_prepared(config)
    (directory / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"manifest\.json: missing; .* is not a complete prepared directory"):
        open_prepared(config)


def test_older_format(copy) -> None:
    directory, config = copy
    manifest = _manifest(directory)
    manifest["format_version"] = 0
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        DataError, match=r"manifest\.json: prepared with format version 0; .* reads version 1"
    ):
        open_prepared(config)


def test_manifest_for_another_data_config(copy, tmp_path: Path) -> None:
    directory, _config = copy
    other = DataConfig.from_dict({**SETTINGS, "vocab": {"vocab_size": 250}, "languages": ["qaa"],
                                  "cache_dir": str(tmp_path), "prepared": str(directory)})  # fmt: skip
    with pytest.raises(
        DataError, match=r"(?s)prepared for another data config.*data\.vocab: run config .*250"
    ):
        open_prepared(other)
    pivot = DataConfig.from_dict({**SETTINGS, "pivot": "de", "prepared": str(directory)})
    with pytest.raises(DataError, match=r"data\.pivot: run config 'de', prepared 'en'"):
        open_prepared(pivot)


def test_corrupt_vocabulary(copy) -> None:
    directory, config = copy
    (directory / "spm.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match=r"spm\.model: not a usable SentencePiece model"):
        open_prepared(config)


def test_not_prepared_yet_names_the_directory(tmp_path: Path) -> None:
    config = DataConfig.from_dict({**SETTINGS, "prepared": str(tmp_path / "nothing")})
    with pytest.raises(DataError, match=r"nothing: no prepared data directory; run gradvac-prepare"):
        open_prepared(config)


def test_training_entry_fails_before_any_process_group(copy) -> None:
    """trainer.run opens the prepared data before init_distributed: the error comes first."""
    from gradvac_ds.training.run_config import RunConfig
    from gradvac_ds.training.trainer import run

    directory, config = copy
    (directory / "train.qaa-en.bin").write_bytes(b"")
    overrides = {f"data.{key}": value for key, value in SETTINGS.items()}
    overrides.update(
        {"data.direction": "many-to-one", "data.max_positions": 256, "data.batching.max_tokens": 1024}
    )
    overrides.update(
        {"data.prepared": str(directory), "data.cache_dir": config.cache_dir, "run_dir": str(directory)}
    )
    run_config = RunConfig.load(Path(__file__).parents[3] / "configs" / "demo.yaml", overrides)
    with pytest.raises(DataError, match=r"train\.qaa-en\.bin: 0 bytes"):
        run(run_config)
    assert not torch.distributed.is_initialized()
