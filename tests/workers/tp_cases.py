"""GradVac with megatron-core tensor parallelism (TP=2) under ZeRO, against a TP=1 reference.

Run under torchrun (gloo, DS_ACCELERATOR=cpu) on 2 processes (TP=2 x DP=1) or 4 (TP=2 x DP=2):

    torchrun --nproc_per_node 4 tests/workers/tp_cases.py --out results.jsonl [--cases a,b]

Phase 1 (megatron parallel_state with TP=1): for every reference the cases need, one rank builds
the TP=1 model from the seed, computes each task's full gradient over all data-parallel ranks'
micro-batches (loss / gradient_accumulation_steps / dp_world, as DeepSpeed scales it), the Gram
per layer group, the dense GradVac loop (gradvac_ds.reference), clip_grad_norm_ and the optimizer,
and broadcasts the result. Phase 2 (parallel_state re-initialised with TP=2): every case rebuilds
the model from the same seed at TP=2, trains it with GradVacEngine on DeepSpeed ZeRO, records the
[L, K, K] Gram the engine all-reduces each step, gathers the full parameters (ZeRO-3 fp32 masters,
then the tensor-parallel shards along ``partition_dim``) and compares everything on every rank.
Rank 0 writes one JSON line per case with the worst errors over all ranks.

Why Adam's eps is 1e-4 and lr 3e-3: the TP=2 forward/backward sums in a different order than
TP=1, so the task gradients differ by fp32 rounding (~2e-7 of each tensor's largest element).
Where a gradient element is (nearly) zero in exact arithmetic (e.g. attention key biases: the
softmax is invariant to them) that rounding noise is all there is, and Adam with eps=1e-8 turns
noise of 1e-10 into an O(lr) update of random sign: with lr 1e-2 the TP=1 and TP=2 parameters then differ
by ~3e-5 and the later Grams by ~1e-5, on either side, whatever GradVac does. eps=1e-4 bounds that
amplification by lr/eps, and the runs stay in Adam's sign-like regime (gradients ~1e-2), so the
parameters still move by ~0.9 % of the largest parameter in three steps.
"""

from __future__ import annotations

import argparse
import functools
import os

import deepspeed
import torch
from deepspeed import comm as dist
from deepspeed.utils import safe_get_full_fp32_param
from harness import run_cases
from megatron.core import parallel_state

import gradvac_ds
from gradvac_ds.algorithm import draw_task_orders, step_generator
from gradvac_ds.comm import Comm
from gradvac_ds.gram import SIGNATURE_SLOTS
from gradvac_ds.grouping import group_parameters
from gradvac_ds.layout import ParallelLayout
from gradvac_ds.reference import dense_gradvac_groups
from gradvac_ds.training.build import leave_together
from gradvac_ds.training.megatron import MegatronMPU, init_model_parallel
from gradvac_ds.training.modeling import build_model, padded_vocab_size
from gradvac_ds.zero import is_tensor_parallel_parameter

TP = 2
TASKS = ["de-en", "fr-en", "ja-en"]
K = len(TASKS)
MICRO_BATCHES = 2  # per task and step; gradient_accumulation_steps = K * MICRO_BATCHES
STEPS = 3
BATCH = 2
VOCAB = 60  # padded to 64 rows at TP=1 (multiple of 8) and at TP=2 (multiple of 16) alike
SEED = 7
LR, WEIGHT_DECAY, CLIP, BETA = 3e-3, 0.1, 0.5, 0.5
ADAM_EPS = 1e-4  # see the module docstring
PAD, BOS, EOS = 0, 1, 2
FIRST_PIECE = 6  # 3..5 are the target-language tags
PIECES_PER_TASK = (VOCAB - FIRST_PIECE) // K


def model_config(kind: str) -> dict:
    """A very small model; T5 and Marian tie their embeddings (T5's output bias sharded), GPT has an
    output layer."""
    return {
        "name": f"tp_test_{kind}",
        "hidden_size": 32,
        "ffn_hidden_size": 64,
        "num_attention_heads": 2,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "decoder_only_layers": 2,
        "max_sequence_length": 32,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "label_smoothing": 0.1,
        "make_vocab_size_divisible_by": 8,
        "share_embeddings": kind != "decoder",
    }


def batch(step: int, task: int, dp_rank: int, mb: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (src, tgt) for one micro-batch; task t translates into its own target pieces,
    so the tasks' gradients on the output side conflict."""
    gen = torch.Generator().manual_seed(1_000_003 * step + 10_007 * task + 101 * dp_rank + mb)
    src = torch.full((BATCH, 9), PAD)
    tgt = torch.full((BATCH, 9), PAD)
    for row in range(BATCH):
        n_src, n_tgt = (int(v) for v in torch.randint(2, 8, (2,), generator=gen))
        src[row, 0] = 3 + task
        src[row, 1 : 1 + n_src] = torch.randint(FIRST_PIECE, VOCAB, (n_src,), generator=gen)
        src[row, 1 + n_src] = EOS
        first = FIRST_PIECE + task * PIECES_PER_TASK
        tgt[row, 0] = BOS
        tgt[row, 1 : 1 + n_tgt] = torch.randint(first, first + PIECES_PER_TASK, (n_tgt,), generator=gen)
        tgt[row, 1 + n_tgt] = EOS
    return src, tgt


def make_optimizer(name: str, params):
    if name == "adamw":
        return torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY, eps=ADAM_EPS)
    return torch.optim.Adam(params, lr=LR, eps=ADAM_EPS)


def group_grams(flat: list[torch.Tensor], slices: list[list[slice]]) -> torch.Tensor:
    """[L, K, K] Gram of K flat task gradients per group, in float64."""
    grams = []
    for group in slices:
        x = torch.stack([torch.cat([g[s] for s in group]) for g in flat]).double()
        grams.append(x @ x.T)
    return torch.stack(grams)


def reference(kind: str, optimizer: str, dp_world: int) -> dict:
    """The TP=1 model from the same seed, dense GradVac on full task gradients, clipping, optimizer."""
    model = build_model(model_config(kind), VOCAB, kind, seed=SEED)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grouping = group_parameters(params, "layer")
    slices, offset = [[] for _ in grouping.group_names], 0
    for name, p in params:
        slices[grouping.group_of[name]].append(slice(offset, offset + p.numel()))
        offset += p.numel()
    opt = make_optimizer(optimizer, [p for _, p in params])
    init = {n: p.detach().clone() for n, p in params}
    targets = torch.zeros(grouping.num_groups, K, K, dtype=torch.float64)
    grams, norms = [], []
    for step in range(STEPS):
        flat = []
        for t in range(K):
            model.zero_grad(set_to_none=True)
            for r in range(dp_world):
                for mb in range(MICRO_BATCHES):
                    (model(*batch(step, t, r, mb)) / (K * MICRO_BATCHES) / dp_world).backward()
            flat.append(
                torch.cat(
                    [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for _, p in params]
                )
            )
        grams.append(group_grams(flat, slices))
        orders = draw_task_orders(K, step_generator(0, step)).tolist()
        update, targets, _ = dense_gradvac_groups(
            flat, slices, targets, mode="gradvac", beta=BETA, active=[True] * K, orders=orders
        )
        cursor = 0
        for _, p in params:
            p.grad = update[cursor : cursor + p.numel()].view_as(p).to(p.dtype).clone()
            cursor += p.numel()
        norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in params], CLIP)))
        opt.step()
    return {
        "init": init,
        "params": {n: p.detach().clone() for n, p in params},
        "grams": torch.stack(grams),
        "targets": targets,
        "group_names": list(grouping.group_names),
        "grad_norms": norms,
    }


def compute_references(keys: list[tuple[str, str]], dp_world: int) -> dict:
    """Each reference on one rank (round robin), then broadcast to all ranks."""
    rank, world = dist.get_rank(), dist.get_world_size()
    out = {}
    for i, key in enumerate(keys):
        owner = i % world
        holder = [reference(*key, dp_world) if rank == owner else None]
        dist.broadcast_object_list(holder, src=owner)
        out[key] = holder[0]
    return out


class GramRecorder(Comm):
    """The engine's collectives, keeping a copy of every summed Gram all-reduce (the packed
    ``[L * K * K + SIGNATURE_SLOTS]`` tensor; :meth:`grams` unpacks them to [L, K, K])."""

    def __init__(self) -> None:
        self.packed: list[torch.Tensor] = []

    def all_reduce(self, tensor, op=dist.ReduceOp.SUM, group=None):
        super().all_reduce(tensor, op=op, group=group)
        if op == dist.ReduceOp.SUM:
            self.packed.append(tensor.detach().cpu().clone())

    @property
    def all_reduces(self) -> int:
        return len(self.packed)

    def grams(self, num_groups: int, num_tasks: int) -> list[torch.Tensor]:
        return [t[:-SIGNATURE_SLOTS].view(num_groups, num_tasks, num_tasks) for t in self.packed]


class IgnoreTensorParallelism(ParallelLayout):
    """Negative control: every parameter counted as if each TP rank held a different shard, so the
    replicated ones (LayerNorm) are summed T times."""

    def is_sharded(self, param) -> bool:
        return True


def full_parameters(gv) -> dict[str, torch.Tensor]:
    """The whole TP=1-shaped model: fp32 masters at ZeRO-3, then TP shards along partition_dim."""
    tp_group = parallel_state.get_tensor_model_parallel_group()
    stage3 = gv.ds_engine.zero_optimization_stage() == 3
    out = {}
    for name, p in gv.ds_engine.module.named_parameters():
        if not p.requires_grad:  # Marian's fixed sinusoid tables: not in the reference either
            continue
        local = (safe_get_full_fp32_param(p) if stage3 else p).detach().float().contiguous()
        if is_tensor_parallel_parameter(p):
            shards = [torch.empty_like(local) for _ in range(dist.get_world_size(group=tp_group))]
            dist.all_gather(shards, local, group=tp_group)
            local = torch.cat(shards, dim=p.partition_dim)
        out[name] = local
    return out


def max_over_ranks(values: dict[str, float]) -> dict[str, float]:
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return dict(zip(keys, t.tolist(), strict=True))


def case(
    kind: str, stage: int, optimizer: str, ref: dict, extra_zero: dict | None = None, broken: bool = False
) -> dict:
    dp_rank = parallel_state.get_data_parallel_rank()
    model = build_model(model_config(kind), VOCAB, kind, seed=SEED)
    config = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": K * MICRO_BATCHES,
        "gradient_clipping": CLIP,
        "steps_per_print": 10**9,
        "zero_optimization": {"stage": stage, "reduce_bucket_size": 2000, **(extra_zero or {})},
        "gradvac": {
            "mode": "gradvac",
            "beta": BETA,
            "granularity": "layer",
            "tasks": TASKS,
            "seed": 0,
            "consistency_check_interval": 1,
        },
    }
    recorder = GramRecorder()
    layout_type = IgnoreTensorParallelism if broken else ParallelLayout
    gv, *_ = gradvac_ds.initialize(
        config=config,
        model=model,
        optimizer=make_optimizer(optimizer, model.parameters()),
        mpu=MegatronMPU(),
        layout=layout_type(tensor_parallel=parallel_state.get_tensor_model_parallel_group()),
        comm=recorder,
    )
    fired = 0
    for step in range(STEPS):
        for t, name in enumerate(TASKS):
            with gv.task(name, micro_batches=MICRO_BATCHES):
                for mb in range(MICRO_BATCHES):
                    gv.backward(gv(*batch(step, t, dp_rank, mb)))
        fired += int(gv.step().result.fired.sum())
    got = full_parameters(gv)
    want, init = ref["params"], ref["init"]
    same_shapes = got.keys() == want.keys() and all(got[n].shape == want[n].shape for n in want)
    scale = max(w.abs().max().item() for w in want.values())
    diff = {n: (got[n] - want[n]).abs().max().item() for n in want} if same_shapes else {}
    worst = max(diff, key=diff.get) if diff else None
    grams = torch.stack(recorder.grams(gv.grouping.num_groups, len(TASKS)))
    # |G - G_ref| per group relative to the group's largest squared task-gradient norm: [steps, L]
    gram_errs = (grams - ref["grams"]).abs().amax(dim=(-2, -1)) / ref["grams"].diagonal(
        dim1=-2, dim2=-1
    ).amax(dim=-1)
    names = list(gv.grouping.group_names)
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, names)
    errors = max_over_ranks(
        {
            "param_rel_err": diff[worst] / scale if diff else float("inf"),
            "param_rel_err_per_tensor": max(diff[n] / want[n].abs().max().item() for n in diff)
            if diff
            else float("inf"),
            "gram_rel_err": gram_errs.max().item(),
            "gram_rel_err_step0": gram_errs[0].max().item(),
            "target_abs_err": (gv.state.targets - ref["targets"]).abs().max().item(),
        }
    )
    params = list(gv.ds_engine.module.parameters())
    return {
        **errors,
        "worst_param_rank0": worst,
        "same_shapes_as_tp1": same_shapes,
        "adapter": type(gv.adapter).__name__,
        "tp": parallel_state.get_tensor_model_parallel_world_size(),
        "dp": parallel_state.get_data_parallel_world_size(),
        "gram_all_reduces": recorder.all_reduces,
        "steps": STEPS,
        "num_groups": gv.grouping.num_groups,
        "group_names": names,
        "group_names_agree_across_ranks": all(n == names for n in everyone),
        "group_names_match_tp1": names == ref["group_names"],
        "sharded_params": sum(is_tensor_parallel_parameter(p) for p in params),
        "replicated_params": sum(not is_tensor_parallel_parameter(p) for p in params),
        "fired": fired,
        "moved": max((want[n] - init[n]).abs().max().item() for n in want) / scale,
        "clipped_steps": sum(n > CLIP for n in ref["grad_norms"]),
        "skipped": gv.ds_engine.skipped_steps,
    }


# case name -> (kind, ZeRO stage, optimizer, extra zero_optimization settings, broken)
CASES = {
    "encdec_s1_adam": ("encdec", 1, "adam", None, False),
    "encdec_s2_adamw": ("encdec", 2, "adamw", None, False),
    "encdec_s3_adam": ("encdec", 3, "adam", None, False),
    "encdec_s3_p0_adam": ("encdec", 3, "adam", {"stage3_param_persistence_threshold": 0}, False),
    "encdec_s0_adam": ("encdec", 0, "adam", None, False),
    "decoder_s1_adamw": ("decoder", 1, "adamw", None, False),
    "decoder_s2_adam": ("decoder", 2, "adam", None, False),
    "decoder_s3_adamw": ("decoder", 3, "adamw", None, False),
    # negative control: the same run with the TP weights of the Gram removed must fail the check
    "broken_no_tp_weights_s2": ("encdec", 2, "adamw", None, True),
    # the Hugging Face kind (TP=1, DP = every rank), against its own dense reference
    "marian_s2_adamw": ("marian", 2, "adamw", None, False),
    "marian_s3_adam": ("marian", 3, "adam", None, False),
}
DATA_PARALLEL_KINDS = ("marian",)
"""Kinds without tensor parallelism: their cases run at TP=1 with every rank data-parallel."""
# TP=2 x DP=2: stage 0 is here for its 1/(T*N) weight (N=1 at two ranks); no negative control
FOUR_RANK_CASES = (
    "encdec_s0_adam",
    "encdec_s1_adam",
    "encdec_s2_adamw",
    "encdec_s3_adam",
    "decoder_s1_adamw",
    "decoder_s2_adam",
    "decoder_s3_adamw",
)


def at_tensor_parallel_one(run: functools.partial) -> dict:
    """Run a case under megatron's parallel_state at TP=1 (every rank data-parallel), then go back
    to TP=2 for the cases after it."""
    parallel_state.destroy_model_parallel()
    init_model_parallel(1)
    try:
        return run()
    finally:
        parallel_state.destroy_model_parallel()
        init_model_parallel(TP)


def case_missing_mpu() -> dict:
    """A TP model given to the engine without megatron's mpu is refused, not silently mis-reduced."""
    model = build_model(model_config("encdec"), VOCAB, "encdec", seed=SEED)
    config = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": K,
        "zero_optimization": {"stage": 1},
        "gradvac": {"tasks": TASKS},
    }
    try:
        gradvac_ds.initialize(
            config=config, model=model, optimizer=make_optimizer("adam", model.parameters())
        )
    except RuntimeError as err:
        return {"error_message": str(err)}
    return {"error_message": None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", default="")
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo")
    world = dist.get_world_size()
    dp_world = world // TP
    selected = CASES if world == TP else {k: v for k, v in CASES.items() if k in FOUR_RANK_CASES}
    if args.cases:
        selected = {k: v for k, v in CASES.items() if k in args.cases.split(",")}
    assert padded_vocab_size(VOCAB, 1, 8) == padded_vocab_size(VOCAB, TP, 8)

    init_model_parallel(1)
    keys = sorted({(kind, opt) for kind, _, opt, _, _ in selected.values()})
    refs = compute_references([k for k in keys if k[0] not in DATA_PARALLEL_KINDS], dp_world)
    refs |= compute_references([k for k in keys if k[0] in DATA_PARALLEL_KINDS], world)
    parallel_state.destroy_model_parallel()
    init_model_parallel(TP)

    runs = {
        name: functools.partial(case, kind, stage, opt, refs[(kind, opt)], extra, broken)
        for name, (kind, stage, opt, extra, broken) in selected.items()
    }
    for name, (kind, *_) in selected.items():
        if kind in DATA_PARALLEL_KINDS:
            runs[name] = functools.partial(at_tensor_parallel_one, runs[name])
    if not args.cases:
        runs["missing_mpu"] = case_missing_mpu
    run_cases(runs, args.out)
    leave_together()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
