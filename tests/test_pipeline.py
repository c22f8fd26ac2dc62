import time
from pathlib import Path
from typing import Any

import pytest

from vidray.capacity import Capacity, check_fits, check_shared_output, cluster_capacity
from vidray.config import BuildConfig, ConfigError, OutputConfig, StageResources
from vidray.pipeline import pools, run_build, stage_plan


def test_plan_has_every_stage_in_order() -> None:
    names = [name for name, *_ in stage_plan(BuildConfig(), "/tmp/out")]
    assert names == ["decode", "transcribe", "keywords", "shots", "dedup", "label", "sink"]


def test_embeddings_come_before_dedup_and_bad_models_stop_the_job(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vidray.testing.vision_models import tiny_clip

    cfg = BuildConfig()
    cfg.embed.enabled, cfg.embed.model = True, str(tiny_clip(tmp_path / "clip"))
    names = [name for name, *_ in stage_plan(cfg, "/tmp/out")]
    assert names.index("shots") < names.index("embed") == names.index("dedup") - 1
    cfg.embed.model = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match="missing"):
        stage_plan(cfg, "/tmp/out")


def test_stages_with_equal_settings_share_a_pool() -> None:
    from vidray.config import load_config

    local = pools(stage_plan(load_config().build, "/tmp/out"))
    assert [name for name, *_ in local] == [
        "decode",
        "transcribe",
        "keywords+shots+dedup+label+sink",
    ]
    light = local[-1]
    assert light[1].__name__ == "KeywordsShotsDedupLabelSink" and len(light[2]) == 5
    cfg = load_config(Path(__file__).parents[1] / "configs" / "cluster.yaml").build
    cfg.embed.enabled = False
    names = [name for name, *_ in pools(stage_plan(cfg, "/tmp/out"))]
    assert names == ["decode", "transcribe", "keywords+shots+dedup+label+sink"]
    gpu = StageResources(num_cpus=1, num_gpus=0.5)  # GPU stages never share an actor
    assert len(pools([("transcribe", object, (), gpu), ("embed", object, (), gpu)])) == 2


def test_gpu_stages_are_refused_on_a_cluster_without_gpus() -> None:
    cfg = BuildConfig()
    cfg.ray.transcribe = StageResources(num_cpus=0.5, num_gpus=0.5)
    with pytest.raises(ValueError, match=r"'transcribe' asks 0.5 GPUs .* has 0"):
        check_fits(stage_plan(cfg, "/tmp/out"), Capacity(cpus=2.0, gpus=0.0))
    check_fits(stage_plan(cfg, "/tmp/out"), Capacity(cpus=2.0, gpus=1.0))


def test_default_plan_fits_a_two_core_laptop() -> None:
    check_fits(stage_plan(BuildConfig(), "/tmp/out"), Capacity(cpus=2.0))


def test_unschedulable_plan_is_refused_with_the_stage_named() -> None:
    cfg = BuildConfig()
    cfg.ray.transcribe = StageResources(num_cpus=4.0)
    with pytest.raises(ValueError, match=r"'transcribe' asks 4 CPUs"):
        check_fits(stage_plan(cfg, "/tmp/out"), Capacity(cpus=2.0))
    cfg.ray.transcribe = StageResources(num_cpus=1.0, min_actors=2, max_actors=2)
    with pytest.raises(ValueError, match="minimum actor pools need"):
        check_fits(stage_plan(cfg, "/tmp/out"), Capacity(cpus=2.0))


def test_each_actor_must_fit_on_one_node_and_gpu_pools_on_the_cluster() -> None:
    cfg = BuildConfig()
    cfg.ray.transcribe = StageResources(num_cpus=3.0)
    two_nodes = cluster_capacity([{"CPU": 2.0}, {"CPU": 2.0}])
    assert two_nodes == Capacity(cpus=4.0, gpus=0.0, node_cpus=2.0, node_gpus=0.0)
    with pytest.raises(
        ValueError, match=r"'transcribe' asks 3 CPUs per actor but the largest node has 2"
    ):
        check_fits(stage_plan(cfg, "/tmp/out"), two_nodes)
    cfg.ray.transcribe = StageResources(num_cpus=0.5, num_gpus=1.0, min_actors=2, max_actors=4)
    cfg.ray.dedup = StageResources(num_cpus=0.5, num_gpus=0.5)
    one_gpu = cluster_capacity([{"CPU": 8.0, "GPU": 1.0}, {"CPU": 8.0, "GPU": 1.0}])
    with pytest.raises(
        ValueError, match=r"need 2.5 GPUs \(transcribe 2, dedup 0.5\) but the cluster has 2"
    ):
        check_fits(stage_plan(cfg, "/tmp/out"), one_gpu)


def test_an_autoscaling_cluster_is_checked_against_its_declared_maximum() -> None:
    cfg = BuildConfig()
    cfg.ray.transcribe = StageResources(num_cpus=2.0, num_gpus=0.5, min_actors=1, max_actors=8)
    head_only = [{"CPU": 0.0, "memory": 8e9}]  # a head that runs no work, no worker yet
    with pytest.raises(ValueError, match="declare an autoscaling cluster's CPUs"):
        check_fits(stage_plan(cfg, "/tmp/out"), cluster_capacity(head_only))
    check_fits(stage_plan(cfg, "/tmp/out"), cluster_capacity(head_only, max_cpus=544, max_gpus=56))


def test_shipped_cluster_config_fits_its_declared_cluster() -> None:
    from vidray.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "configs" / "cluster.yaml").build
    cfg.embed.enabled = False  # the plan would check the hub model is cached; not the point here
    assert cfg.ray.max_cpus and cfg.ray.max_gpus
    check_fits(
        stage_plan(cfg, "/tmp/out"),
        cluster_capacity([{"CPU": 0.0}], cfg.ray.max_cpus, cfg.ray.max_gpus),
    )


def test_missing_input_fails_before_ray_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        run_build([str(tmp_path / "nope")], str(tmp_path / "out"), BuildConfig())
    assert not (tmp_path / "out").exists()


def test_a_plan_that_cannot_be_scheduled_stops_a_real_build_at_once(
    local_ray: Any, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vidray.cli import main

    out = tmp_path / "out"
    started = time.monotonic()
    code = main(
        [
            "build",
            str(samples),
            "--output",
            str(out),
            "build.ray.transcribe.min_actors=4",
            "build.ray.transcribe.max_actors=4",
        ]
    )
    assert code == 2 and time.monotonic() - started < 60  # refused, not waiting on Ray
    err = capsys.readouterr().err
    assert (
        "pools need 2.375 CPUs (most: transcribe 2, decode 0.25, keywords+shots+dedup+label+sink 0.125)"
        in err
    )
    assert not list(out.rglob("*.parquet"))


def test_a_local_output_is_refused_on_a_cluster_of_several_machines() -> None:
    out = OutputConfig()
    check_shared_output("/data/out", {"10.0.0.1"}, out)
    check_shared_output("s3://bucket/out", {"10.0.0.1", "10.0.0.2"}, out)
    with pytest.raises(ConfigError, match="spans 2 machines"):
        check_shared_output("/data/out", {"10.0.0.1", "10.0.0.2"}, out)
    with pytest.raises(ConfigError, match="autoscales over machines"):  # workers yet to come
        check_shared_output("/data/out", {"10.0.0.1"}, out, autoscales=True)
    out.shared_filesystem = True
    check_shared_output("/mnt/efs/out", {"10.0.0.1", "10.0.0.2"}, out)
