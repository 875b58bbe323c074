"""Training entry for the deepspeed launcher, torchrun or srun.

    deepspeed --num_gpus 2 launch/train.py --config configs/demo.yaml
    torchrun --nproc_per_node 8 launch/train.py --config configs/paper_big.yaml

Rank and world size come from the environment the launcher sets (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT); DeepSpeed's ``--local_rank`` argument is accepted and ignored. Started
without a launcher (``python launch/train.py --config ...``) it runs as one process, rank 0 of 1.
"""

import sys

from gradvac_ds.training.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
