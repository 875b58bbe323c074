"""GradVac on a Hugging Face model: a randomly initialised MarianMT trained on three toy tasks.

    deepspeed --num_gpus 2 examples/hf_marian_gradvac.py      # DS_ACCELERATOR=cpu on a CPU box

Each task maps source tokens to its own range of target tokens, so the tasks' gradients disagree on
the output side and GradVac has something to correct. Prints one JSON line per step on rank 0.
"""

import json

import deepspeed
import torch
from transformers import MarianConfig, MarianMTModel

import gradvac_ds

TASKS = ["de-en", "fr-en", "ja-en"]
MICRO_BATCHES, BATCH, VOCAB = 2, 4, 96

deepspeed.init_distributed(deepspeed.get_accelerator().communication_backend_name())
device = deepspeed.get_accelerator().current_device_name()
rank = torch.distributed.get_rank()

torch.manual_seed(0)  # the same initial weights on every rank; no weights are downloaded
model = MarianMTModel(
    MarianConfig(
        vocab_size=VOCAB, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_position_embeddings=32, pad_token_id=0, decoder_start_token_id=0, dropout=0.0,
    )
)  # fmt: skip
ds_config = {
    "train_micro_batch_size_per_gpu": BATCH,
    "gradient_accumulation_steps": len(TASKS) * MICRO_BATCHES,
    "zero_optimization": {"stage": 2},
    "gradient_clipping": 1.0,
    "gradvac": {"mode": "gradvac", "beta": 0.01, "granularity": "layer", "tasks": TASKS, "seed": 0},
}
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
engine, optimizer, _, _ = gradvac_ds.initialize(model=model, optimizer=optimizer, config=ds_config)


def micro_batch(step: int, task: int, index: int) -> dict[str, torch.Tensor]:
    """Source tokens in [4, 32), labels their image in task ``task``'s range of 20 tokens."""
    gen = torch.Generator().manual_seed(10_000 * step + 100 * task + 10 * index + rank)
    source = torch.randint(4, 32, (BATCH, 8), generator=gen)
    labels = 32 + 20 * task + source % 20
    return {"input_ids": source.to(device), "labels": labels.to(device)}


for step in range(4):
    losses = []
    for t, task in enumerate(TASKS):
        with engine.task(task, micro_batches=MICRO_BATCHES):
            for index in range(MICRO_BATCHES):
                loss = engine(**micro_batch(step, t, index)).loss  # transformers' own cross entropy
                engine.backward(loss)
                losses.append(loss.item())
    outcome = engine.step()  # GradVac on the ZeRO partitions, then DeepSpeed's own step
    if rank == 0:
        record = {"step": step, "loss": sum(losses) / len(losses), "groups": engine.grouping.num_groups}
        print(json.dumps({**record, "fired": int(outcome.result.fired.sum())}), flush=True)
