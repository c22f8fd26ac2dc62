"""`ray job submit` entry point for training: the arguments of `vidray train`.

    ray job submit --working-dir . -- python jobs/train.py \\
        --config configs/cluster.yaml s3://BUCKET/PREFIX --model-dir MODEL_DIR

Ray Train's `train.num_workers` workers (each with one GPU when `train.use_gpu: true`) are
placed on the cluster the job was submitted to. Progress (epoch, images/s, time left, loss) is
written to the job's log as a line every 30 seconds; see jobs/build_dataset.py to change that.
"""

import os
import sys

from vidray.cli import main

if __name__ == "__main__":
    os.environ.setdefault("VIDRAY_PROGRESS", "lines")
    sys.exit(main(["train", *sys.argv[1:]]))
