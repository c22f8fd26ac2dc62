"""Where a model runs: `auto` settles on CUDA with float16 when the machine has a GPU."""

from __future__ import annotations

from vidray.config import ConfigError

DEVICES = ("auto", "cuda", "cpu")


def resolve_device(
    device: str,
    precision: str,
    cuda_available: bool,
    *,
    key: str,
    cpu_precision: str,
    missing: type[Exception] = ConfigError,
) -> tuple[str, str]:
    """`auto` settings of config section `key` → (device, precision): CUDA with float16 when
    there is one, else CPU with `cpu_precision`. A bad device name is a `ConfigError`; CUDA
    asked for on a machine without it raises `missing`."""
    if device not in DEVICES:
        raise ConfigError(f"{key}.device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    if device == "cuda" and not cuda_available:
        raise missing(f"{key}.device is cuda but this machine has no CUDA device")
    if precision == "auto":
        precision = "float16" if device == "cuda" else cpu_precision
    return device, precision
