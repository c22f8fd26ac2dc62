import pytest

from vidray.config import BuildConfig, ConfigError, StageResources
from vidray.pipeline import check_fits, run_build, stage_plan


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


def test_gpu_stages_are_refused_on_a_cluster_without_gpus() -> None:
    cfg = BuildConfig()
    cfg.ray.transcribe = StageResources(num_cpus=0.5, num_gpus=0.5)
    with pytest.raises(ValueError, match=r"'transcribe' asks 0.5 GPUs .* has 0"):
        check_fits(stage_plan(cfg, "/tmp/out"), cluster_cpus=2.0, cluster_gpus=0.0)
    check_fits(stage_plan(cfg, "/tmp/out"), cluster_cpus=2.0, cluster_gpus=1.0)


def test_default_plan_fits_a_two_core_laptop() -> None:
    check_fits(stage_plan(BuildConfig(), "/tmp/out"), cluster_cpus=2.0)


def test_unschedulable_plan_is_refused_with_the_stage_named() -> None:
    cfg = BuildConfig()
    cfg.ray.transcribe = StageResources(num_cpus=4.0)
    with pytest.raises(ValueError, match=r"'transcribe' asks 4.0 CPUs"):
        check_fits(stage_plan(cfg, "/tmp/out"), cluster_cpus=2.0)
    cfg.ray.transcribe = StageResources(num_cpus=1.0, min_actors=2, max_actors=2)
    with pytest.raises(ValueError, match="minimum actor pools need"):
        check_fits(stage_plan(cfg, "/tmp/out"), cluster_cpus=2.0)


def test_missing_input_fails_before_ray_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError):
        run_build([str(tmp_path / "nope")], str(tmp_path / "out"), BuildConfig())
    assert not (tmp_path / "out").exists()
