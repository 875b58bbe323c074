"""DataConfig.from_dict: typed parsing and errors naming the field and the allowed values."""

import pytest

from gradvac_ds.errors import ConfigError
from gradvac_ds.training.data import BatchingConfig, DataConfig


def test_defaults_and_nested_sections() -> None:
    config = DataConfig.from_dict(
        {
            "direction": "both",
            "languages": ["qaa", "qab"],
            "batching": {"max_tokens": 512, "temperature": 2},
            "synthetic": {"num_families": 2},
            "filters": {"max_length_ratio": None},
        }
    )
    assert config.direction == "both"
    assert config.languages == ("qaa", "qab")
    assert config.batching == BatchingConfig(max_tokens=512, temperature=2.0)
    assert config.synthetic.num_families == 2
    assert config.filters.max_length_ratio is None
    assert DataConfig.from_dict({}) == DataConfig()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"direction": "sideways"},
            r"data\.direction: 'sideways' is not allowed; allowed values: \['many-to-one'",
        ),
        (
            {"source": "csv"},
            r"data\.source: 'csv' is not allowed; allowed values: \['synthetic', 'sanity', 'fairseq'",
        ),
        ({"splits": ["train", "dev"]}, r"data\.splits\[\]: 'dev' is not allowed"),
        ({"splits": ["valid"]}, r"data\.splits: must contain 'train'"),
        ({"vocab_size": 10}, r"unknown field\(s\) \['vocab_size'\] in data; allowed fields are \["),
        ({"batching": {"tokens": 10}}, r"unknown field\(s\) \['tokens'\] in data\.batching"),
        ({"batching": {"max_tokens": "many"}}, r"data\.batching\.max_tokens = 'many' must be an integer"),
        ({"batching": {"max_tokens": True}}, r"data\.batching\.max_tokens = True must be an integer"),
        ({"languages": "de"}, r"data\.languages = 'de' must be a list"),
        ({"languages": ["de", "en"]}, r"data\.languages: must not contain the pivot 'en'"),
        ({"languages": ["German"]}, r"data\.languages\[\]: invalid language code 'German'"),
        ({"pivot": "EN"}, r"data\.pivot: invalid language code"),
        ({"source": "fairseq"}, r"data\.path: required for source 'fairseq'"),
        ({"source": "tsv"}, r"data\.tsv: required for source 'tsv'"),
        ({"max_positions": 5000}, r"data\.max_positions: must be in \[3, 4096\] \(batching\.max_tokens\)"),
        (
            {"source": "monolingual", "path": "x", "max_positions": 4096},
            r"data\.max_positions: must be in \[3, 4095\] \(batching\.max_tokens - 1",
        ),
        ({"source": "parquet"}, r"allowed values: \[.*'monolingual'\]"),
        ({"vocab": {"model_type": "word"}}, r"vocab\.model_type: 'word'; allowed: \['unigram', 'bpe'\]"),
        ({"synthetic": []}, r"data\.synthetic must be a mapping"),
    ],
)
def test_errors_name_field_and_allowed_values(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DataConfig.from_dict(values)
