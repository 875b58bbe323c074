"""Parameter names -> GradVac groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradvac_ds.grouping import group_name_of, group_parameters

MEGATRON_T5 = [
    "embedding.word_embeddings.weight",
    "embedding.position_embeddings.weight",
    "encoder.layers.0.self_attention.linear_qkv.weight",
    "encoder.layers.0.mlp.linear_fc1.weight",
    "encoder.layers.1.self_attention.linear_qkv.weight",
    "encoder.final_layernorm.weight",
    "decoder.layers.0.cross_attention.linear_q.weight",
    "decoder.layers.1.mlp.linear_fc2.bias",
    "decoder.final_layernorm.weight",
    "output_layer.weight",
]


@pytest.mark.parametrize(
    ("name", "granularity", "group"),
    [
        ("encoder.layers.3.mlp.linear_fc1.weight", "layer", "encoder.layers.3"),
        ("module.m.decoder.layers.11.self_attention.linear_proj.bias", "layer", "module.m.decoder.layers.11"),
        ("transformer_encoder.layers.0.linear1.weight", "layer", "transformer_encoder.layers.0"),
        ("bert.encoder.layer.5.attention.self.query.weight", "layer", "bert.encoder.layer.5"),
        ("transformer.h.2.attn.c_attn.weight", "layer", "transformer.h.2"),
        ("decoder.final_layernorm.weight", "layer", "decoder.final_layernorm"),
        ("output_layer.weight", "layer", "output_layer"),
        ("bias", "layer", "bias"),
        ("encoder.layers.3.mlp.linear_fc1.weight", "enc_dec", "encoder"),
        ("decoder.final_layernorm.weight", "enc_dec", "decoder"),
        ("embedding.word_embeddings.weight", "enc_dec", "embedding.word_embeddings"),
        ("encoder.layers.3.mlp.linear_fc1.weight", "model", "model"),
        ("encoder.layers.3.mlp.linear_fc1.weight", "matrix", "encoder.layers.3.mlp.linear_fc1.weight"),
        ("highway.layers_extra.weight", "layer", "highway.layers_extra"),
    ],
)
def test_group_names(name, granularity, group):
    assert group_name_of(name, granularity) == group


def test_megatron_layout_groups_in_model_order():
    params = [(n, torch.zeros(2, requires_grad=True)) for n in MEGATRON_T5]
    grouping = group_parameters(params, "layer")
    assert grouping.group_names == (
        "embedding.word_embeddings",
        "embedding.position_embeddings",
        "encoder.layers.0",
        "encoder.layers.1",
        "encoder.final_layernorm",
        "decoder.layers.0",
        "decoder.layers.1",
        "decoder.final_layernorm",
        "output_layer",
    )
    assert grouping.members(2) == MEGATRON_T5[2:4]
    assert group_parameters(params, "enc_dec").num_groups == 5
    assert group_parameters(params, "model").num_groups == 1
    assert group_parameters(params, "matrix").num_groups == len(MEGATRON_T5)


def test_torch_transformer_and_frozen_parameters():
    model = nn.Sequential()
    model.add_module("embed", nn.Embedding(10, 8))
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    model.add_module("body", nn.TransformerEncoder(layer, 2, enable_nested_tensor=False))
    model.add_module("head", nn.Linear(8, 10))
    model.embed.weight.requires_grad_(False)
    grouping = group_parameters(model.named_parameters(), "layer")
    assert grouping.group_names == ("body.layers.0", "body.layers.1", "head")
    assert "embed.weight" not in grouping.group_of
    text = grouping.describe()
    assert "body.layers.1" in text and "3 groups" in text


def test_errors():
    with pytest.raises(ValueError, match="layer"):
        group_name_of("x.weight", "layers")
    with pytest.raises(ValueError, match="no trainable"):
        group_parameters([("w", torch.zeros(1, requires_grad=False))], "layer")
