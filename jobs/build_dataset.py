"""`ray job submit` entry point for a build: the arguments of `vidray build`.

    ray job submit --working-dir . -- python jobs/build_dataset.py \\
        --config configs/cluster.yaml INPUTS --output s3://BUCKET/PREFIX [--resume] [key=value ...]

The job's driver joins the cluster it was submitted to (Ray sets RAY_ADDRESS for it); the
stages then run as actor pools across the cluster's nodes. A job's log is no terminal, so
progress is written as a line every 30 seconds (`--progress lines`): videos done, rate, time
left, errors so far. `--progress none`, or VIDRAY_PROGRESS / VIDRAY_PROGRESS_INTERVAL in the
job's runtime environment, change that.
"""

import os
import sys

from vidray.cli import main

if __name__ == "__main__":
    os.environ.setdefault("VIDRAY_PROGRESS", "lines")
    sys.exit(main(["build", *sys.argv[1:]]))
