import pytest

from vidray.config import BuildConfig, StageResources
from vidray.pipeline import check_fits, run_build, stage_plan


def test_plan_has_every_stage_in_order() -> None:
    names = [name for name, *_ in stage_plan(BuildConfig(), "/tmp/out")]
    assert names == ["decode", "transcribe", "keywords", "shots", "dedup", "label", "sink"]


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
