"""Typed run configuration: one dataclass per stage, YAML files plus dotted `key=value` overrides."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "local.yaml"


class ConfigError(ValueError):
    """A job-level misconfiguration: raised before any work starts."""


@dataclass
class SourcesConfig:
    max_videos: int | None = None  # stop expanding inputs after this many distinct videos
    urls_per_task: int = 16  # playlist/channel/search URLs resolved per Ray task
    max_tasks_in_flight: int = 8


@dataclass
class FetchConfig:
    target_height: int = 360  # the smallest video stream at or above this height, best audio
    audio_only: bool = False  # fetch audio alone (no frames wanted)
    max_filesize: str = "4G"
    max_duration_s: float = 6 * 3600.0
    subtitles: bool = False  # fetch subtitles and automatic captions with the video
    subtitle_langs: list[str] = field(default_factory=lambda: ["en", "en-orig", "en.*", ".*-orig"])
    retries: int = 4  # for transient failures only (timeouts, 5xx, resets, incomplete reads)
    backoff_s: float = 2.0  # the first retry waits about this long, doubling each time
    max_backoff_s: float = 120.0
    socket_timeout_s: float = 30.0
    per_host: int = 4  # concurrent downloads from one host across the whole cluster
    min_interval_s: float = 0.0  # between download starts on one host
    rate_limit: str | None = None  # bytes per second per download, e.g. "4M"
    cookies: str | None = None  # a Netscape cookies.txt file
    proxy: str | None = None
    user_agent: str | None = None
    scratch_dir: str | None = None  # default: <tmp>/vidray-scratch on each node
    scratch_budget: str = "20G"  # downloads wait while the scratch folder holds this much
    scratch_wait_s: float = 600.0
    keep_media: bool = False  # keep fetched media under ROOT/media (else deleted after decoding)


@dataclass
class DecodeConfig:
    every_s: float = 3.0  # one frame every this many seconds, at the centre of each interval
    short_side: int = 256  # frames are resized so their short side is this many pixels
    jpeg_quality: int = 90
    sample_rate: int = 16_000
    strategy: str = "auto"  # auto | seek | sequential | keyframes (see stages/decode.py)
    snap_to_keyframes: bool = False  # auto may take the nearest keyframe for each sample time
    threads: int = 1  # decoder threads per video; 1 is cheapest in CPU time, actors add parallelism


@dataclass
class PocketSphinxConfig:
    model: str = "default"  # "default" = the English model bundled with pocketsphinx, or a folder
    vocabulary: str | None = None  # a word-list file: restrict the recognizer to a domain's words
    lm: str | None = None  # a language model file (ARPA or binary) instead of the bundled one
    dictionary: str | None = None  # a pronunciation dictionary for words the bundled one lacks


@dataclass
class WhisperXConfig:
    model: str = "large-v2"  # faster-whisper name (hub) or a local CTranslate2 folder
    align_model: str | None = None  # wav2vec2 CTC hub name or folder; None: WhisperX's default
    device: str = "auto"  # auto (CUDA when present) | cuda | cpu
    compute_type: str = "auto"  # auto: float16 on CUDA, int8 on CPU
    batch_size: int = 16  # speech segments per forward pass, across the batch's videos
    vad_method: str = "pyannote"  # pyannote: the segmentation model shipped with whisperx
    vad_onset: float = 0.5
    vad_offset: float = 0.363
    segment_s: float = 30.0  # VAD merges speech into segments of at most this long
    download_root: str | None = None  # where hub models are cached


@dataclass
class SubtitlesConfig:
    automatic: bool = True  # accept automatic captions when there are no creator captions
    languages: list[str] = field(default_factory=lambda: ["en"])  # preferred first; "*" = any


@dataclass
class AsrConfig:
    backend: str = "pocketsphinx"  # pocketsphinx | whisperx | subtitles
    prefer: list[str] = field(default_factory=list)  # ordered fallbacks, e.g. [subtitles, whisperx]
    language: str | None = "en"  # None: detect (whisperx)
    chunk_s: float = 120.0  # long audio is recognised in chunks of this length...
    overlap_s: float = 5.0  # ...overlapping by this much; words at the seams are de-duplicated
    batch_audio_s: float = 3600.0  # audio per recognizer call, gathered across the batch's videos
    pocketsphinx: PocketSphinxConfig = field(default_factory=PocketSphinxConfig)
    whisperx: WhisperXConfig = field(default_factory=WhisperXConfig)
    subtitles: SubtitlesConfig = field(default_factory=SubtitlesConfig)

    def backends(self) -> list[str]:
        return list(self.prefer) or [self.backend]


@dataclass
class AudioStatsConfig:
    enabled: bool = True
    min_speech_ratio: float = 0.0  # videos with less speech than this become `filtered` errors
    frame_ms: float = 50.0  # loudness envelope resolution


@dataclass
class KeywordsConfig:
    # "blank:LANG" = tokenizer + lookup lemmatizer + stop words, no download (the offline
    # default); a trained pipeline's name or folder adds POS filtering and multi-word terms.
    spacy_model: str = "blank:en"
    min_length: int = 3
    extra_stop_words: list[str] = field(default_factory=list)
    allow_list: str | None = None  # a file of lemmas/terms, one per line: keep only these
    block_list: str | None = None  # a file of lemmas/terms never to keep
    terms: bool = True  # multi-word noun terms ("olive oil") when the pipeline tags POS
    salience_window_s: float = 60.0  # within-video tf-idf: the video's windows are the documents
    corpus_stats: str | None = (
        None  # document frequencies from an earlier run (corpus_stats.parquet)
    )


@dataclass
class ShotsConfig:
    enabled: bool = True
    threshold: float = 0.5  # colour-histogram change (share of pixels) that marks a cut


@dataclass
class EmbedConfig:
    enabled: bool = False  # the embedded default keeps phash dedup only; on in configs/cluster.yaml
    model: str | None = None  # transformers hub name or local folder: CLIP/SigLIP vision, DINOv2
    device: str = "auto"  # auto (CUDA when present) | cuda | cpu
    dtype: str = "auto"  # auto: float16 on CUDA, float32 on CPU | float16 | bfloat16 | float32
    batch_size: int = 64  # frames per forward pass, gathered across the batch's videos


@dataclass
class DedupConfig:
    max_distance: int = 8  # phash Hamming distance at or below which two frames are duplicates
    window: int = 8  # compare against this many most recently kept frames
    min_similarity: float = 0.95  # with embeddings: cosine at or above which frames are duplicates


@dataclass
class LabelConfig:
    # Chosen with bench/labels.py (docs/benchmarks.md): with shot clipping, a wide window
    # raises subject recall at almost no cost in precision, and a little salience weight
    # brings precision to the 0.8 aim; words said before a frame matter more than after.
    before_s: float = 10.0  # words this long before a frame's span still count (within its shot)
    after_s: float = 10.0
    min_score: float = 0.5
    max_labels: int = 10
    min_word_score: float = 0.7  # recognizer confidence below which a word is not a label
    salience_weight: float = 0.25  # 0: salience ignored; 1: a word's weight scales with it


@dataclass
class OutputConfig:
    pixels: bool = True  # False: features-only dataset, no image bytes
    endpoint_url: str | None = None  # S3-compatible store (MinIO, Ceph, R2); else AWS_ENDPOINT_URL
    region: str | None = None  # S3 region; else the AWS chain's (AWS_REGION, profile)
    row_group_size: str = "64M"  # target bytes per Parquet row group (image rows are large)
    max_file_size: str = "512M"  # a sink batch larger than this is split into numbered files
    partition_by: list[str] = field(default_factory=list)  # videos columns, e.g. [language]
    # A local output path on a cluster of several machines must be one filesystem mounted
    # on all of them (NFS, EFS, Filestore); say so here, else use s3://.
    shared_filesystem: bool = False


@dataclass
class CorpusDedupConfig:
    """`vidray dedup ROOT`: SemDeDup-style near-duplicate removal across videos."""

    clusters: int | None = None  # k-means clusters; None: about sqrt(frames / 2)
    eps: float = 0.05  # frames with cosine similarity >= 1 - eps are duplicates
    iterations: int = 20  # k-means iterations
    fit_sample: int = 100_000  # frames the centroids are fitted on
    batch_size: int = 4096  # frames per Ray assignment task
    seed: int = 0


@dataclass
class StageResources:
    num_cpus: float = 0.125  # fractional: network- and I/O-bound stages share a core
    num_gpus: float = 0.0  # fractional GPUs per actor (whisperx, embed on a GPU cluster)
    min_actors: int = 1
    max_actors: int = 1
    batch_size: int = 1


@dataclass
class RayConfig:
    # None: RAY_ADDRESS (a job's cluster), else a running local Ray, else a new one.
    address: str | None = None
    num_cpus: int | None = None  # for a local Ray started by vidray
    dashboard: bool = False  # give a local Ray started by vidray its dashboard (~0.9 GB RSS)
    # An autoscaling cluster's size at its largest (head plus max workers); unset: the nodes
    # it has now. The plan is checked against it before anything runs.
    max_cpus: float | None = None
    max_gpus: float | None = None
    object_store_memory: str | None = None  # Ray Data's budget for batches in flight, e.g. 8G
    max_task_retries: int = 3  # reruns of a batch whose actor died (node lost, OOM, a crash)
    # Batches still failing after their retries before the build gives up; their videos go
    # to errors/ as `worker_died` (-1: no limit).
    max_errored_blocks: int = 16
    decode: StageResources = field(default_factory=StageResources)  # fetch + decode share it
    transcribe: StageResources = field(default_factory=StageResources)
    keywords: StageResources = field(default_factory=StageResources)
    shots: StageResources = field(default_factory=StageResources)
    embed: StageResources = field(default_factory=StageResources)
    dedup: StageResources = field(default_factory=StageResources)
    label: StageResources = field(default_factory=StageResources)
    sink: StageResources = field(default_factory=StageResources)


@dataclass
class BuildConfig:
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    audio_stats: AudioStatsConfig = field(default_factory=AudioStatsConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    keywords: KeywordsConfig = field(default_factory=KeywordsConfig)
    shots: ShotsConfig = field(default_factory=ShotsConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass
class TrainConfig:
    """`vidray train ROOT --model-dir DIR`: the image<->word model on Ray Train."""

    # data: split by video, vocabulary, what each frame is paired with
    holdout: float = 0.25  # share of videos held out for evaluation (split by video)
    min_count: int = 2  # a label must occur on this many training frames to enter the vocabulary
    max_vocab: int = 5000
    unique: bool = True  # leave out frames `vidray dedup` marked as cross-video duplicates
    image_size: int = 64  # square input side; a transformers backbone resizes to its own
    bag_size: int = 16  # labels per word bag
    mil_neighbours: int = 2  # neighbouring frames whose labels are candidate positives (MIL-NCE)
    mil_window_s: float = 8.0  # ... within this many seconds
    # model
    encoder: str = "cnn"  # "cnn" (from scratch) or a transformers vision model: hub name or folder
    freeze_encoder: bool = False  # a pretrained backbone: train only the heads
    encoder_lr_scale: float = 0.1  # learning rate of a fine-tuned pretrained backbone, relative
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 192])  # CNN stage widths
    embed_dim: int = 128
    loss: str = "bce"  # multi-label loss: bce or asl (asymmetric)
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float = 0.05
    contrastive_weight: float = 0.5
    temperature: float = 0.07
    augment: bool = True  # random resized crop, horizontal flip, colour jitter
    # optimisation
    epochs: int = 40
    batch_size: int = 16  # per worker
    accumulate_grad_batches: int = 1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: float = 0.05  # share of optimizer steps with a linear warm-up, then cosine decay
    precision: str = "auto"  # auto: bf16/16-mixed on GPU, 32-true on CPU; or a Lightning value
    seed: int = 0
    # Ray Train
    num_workers: int = 2
    cpus_per_worker: float = 0.5
    use_gpu: bool = False
    cache_dataset: bool = True  # decode frames once into Ray's object store (small datasets)
    prefetch_batches: int = 2
    max_failures: int = 0  # worker-group restarts from the last checkpoint before giving up
    # outputs
    checkpoint_dir: str | None = None  # local folder or s3://; default MODEL_DIR/checkpoints
    keep_checkpoints: int = 2
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])  # and/or wandb
    wandb_project: str | None = None  # set to log to Weights & Biases too
    index: bool = True  # build the search index of the dataset's frames after training


@dataclass
class Config:
    build: BuildConfig = field(default_factory=BuildConfig)
    dedup: CorpusDedupConfig = field(default_factory=CorpusDedupConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from `123`, `"500M"`, `"4G"` or `"1.5GiB"`."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ConfigError(f"not a size: {text!r} (write e.g. 500M or 4G)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def read_list_file(path: str, key: str) -> list[list[str]]:
    """The lines of a word-list file named by config key `key`, split into fields, with `#`
    comments and blank lines dropped; an unreadable file is a job error."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {key} {path!r}: {exc}") from exc
    fields = (line.split("#", 1)[0].split() for line in text.splitlines())
    return [f for f in fields if f]


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> Config:
    """Defaults, then the embedded `local.yaml` (or `path`), then `key=value` overrides."""
    source = Path(path) if path else DEFAULT_CONFIG
    if not source.is_file():
        raise ConfigError(f"config file not found: {source}")
    data = yaml.safe_load(source.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    config = _build(Config, data, prefix="")
    for item in overrides:
        apply_override(config, item)
    return config


def apply_override(config: Any, item: str) -> None:
    """Set one `a.b.c=value` override; the value is parsed as YAML (numbers, lists, booleans)."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(
            f"override {item!r} is not of the form key=value (e.g. build.decode.every_s=2)"
        )
    *parents, leaf = key.split(".")
    target = config
    for i, name in enumerate(parents):
        target = _field_value(target, name, ".".join(parents[: i + 1]))
    _field_value(target, leaf, key)
    hints = typing.get_type_hints(type(target))
    setattr(target, leaf, _coerce(yaml.safe_load(raw), hints[leaf], key))


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _field_value(obj: Any, name: str, path: str) -> Any:
    names = [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []
    if name not in names:
        raise ConfigError(f"unknown config key {path!r}; known here: {', '.join(names) or 'none'}")
    return getattr(obj, name)


def _build(cls: Any, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config key {prefix.rstrip('.')!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(
            f"unknown config key(s) {', '.join(repr(prefix + k) for k in unknown)} "
            f"at {where}; known: {', '.join(sorted(known))}"
        )
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value or {}, path + ".")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key {path!r} must be a list, got {value!r}")
        return [_coerce(v, args[0], path) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"config key {path!r} must be {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"config key {path!r} must be int, got {value!r}")
    return value
