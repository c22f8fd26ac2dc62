import re
from pathlib import Path

import pytest

from vidray.config import ConfigError, load_config


def test_defaults_load_from_embedded_local_yaml() -> None:
    cfg = load_config()
    assert cfg.build.decode.every_s == 3.0
    assert cfg.build.asr.backend == "pocketsphinx"
    assert cfg.build.ray.transcribe.num_cpus == 0.5


def test_overrides_are_typed() -> None:
    cfg = load_config(
        overrides=["build.decode.every_s=2", "train.widths=[8, 16]", "build.output.pixels=false"]
    )
    assert cfg.build.decode.every_s == 2.0 and isinstance(cfg.build.decode.every_s, float)
    assert cfg.train.widths == [8, 16]
    assert cfg.build.output.pixels is False


@pytest.mark.parametrize(
    "override, message",
    [
        ("build.decode.every_seconds=2", "unknown config key 'build.decode.every_seconds'"),
        ("build.decode.every_s=fast", "must be float"),
        ("nonsense", "key=value"),
    ],
)
def test_bad_overrides_say_what_to_fix(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=[override])


def test_unknown_key_in_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text("build:\n  decode:\n    evry_s: 2\n")
    with pytest.raises(ConfigError, match=r"build\.decode\.evry_s"):
        load_config(path)


def test_missing_config_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "path", sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))
)
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path)
    if path.stem == "cluster":  # GPU speech and embeddings, embedding dedup
        assert cfg.build.embed.enabled and cfg.build.ray.embed.num_gpus > 0
        assert "whisperx" in cfg.build.asr.backends()
