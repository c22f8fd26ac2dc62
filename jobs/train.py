"""`ray job submit` entry point for training: the arguments of `vidray train`.

    ray job submit --working-dir . -- python jobs/train.py \\
        --config configs/cluster.yaml s3://BUCKET/PREFIX --model-dir MODEL_DIR

Ray Train's `train.num_workers` workers (each with one GPU when `train.use_gpu: true`) are
placed on the cluster the job was submitted to.
"""

import sys

from vidray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
