"""Tiny, randomly initialised speech models in the real WhisperX formats, built in seconds, offline.

Their output is meaningless; they exist so tests can run the whole WhisperX path (faster-whisper
on CTranslate2, wav2vec2 alignment, NLTK sentence splitting) without downloading weights.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Whisper's 99 language tokens, in the order of their ids (50259...).
_LANGUAGE_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su"
)
LANGUAGES = tuple(_LANGUAGE_CODES.split())
N_TEXT = 50256  # ids below this are text pieces; 50256 is "" (see whisper_tokenizer)
ALIGN_CHARS = "|ETAONIRSHDLUCMFWGYPBVKXJQZ'"


@dataclass(frozen=True)
class WhisperXModels:
    # A CTranslate2 Whisper folder: model.bin, tokenizer.json, preprocessor_config.json.
    whisper: Path
    aligner: Path  # a Hugging Face Wav2Vec2ForCTC folder with its processor
    nltk_data: Path  # an NLTK data folder holding punkt_tab


def whisperx_models(folder: str | Path, words: int = 8) -> WhisperXModels:
    """All three under `folder`; what is already there is reused."""
    folder = Path(folder)
    return WhisperXModels(
        tiny_whisper(folder / "whisper", words), tiny_aligner(folder / "aligner"), nltk_data(folder)
    )


def whisper_tokenizer() -> Tokenizer:
    """A byte-level BPE tokenizer in Whisper's multilingual layout (51865 ids).

    Text pieces are pseudo-words (" ba", " mibula", ..., a few numbers and symbols); then "" at
    50256 (CTranslate2 treats a model as multilingual only when "" is in its vocabulary),
    `<|endoftext|>`, `<|startoftranscript|>`, the language and task tokens, `<|notimestamps|>`
    and the timestamp tokens.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    for piece in ("Ġ1", "Ġ2", "Ġ42", "Ġ%", "Ġ$", "Ġ&", "Ġ-", "Ġ'"):  # after the byte symbols
        vocab[piece] = len(vocab)
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    k = 0
    while len(vocab) < N_TEXT:  # pseudo-words: consonant-vowel syllables, one to three
        n, word = k, ""
        while True:
            word += consonants[n % 14] + vowels[(n // 14) % 5]
            n //= 70
            if not n:
                break
        vocab.setdefault("Ġ" + word, len(vocab))
        k += 1
    vocab[""] = N_TEXT
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in LANGUAGES]
    specials += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>"]
    specials += ["<|nocaptions|>", "<|notimestamps|>"]
    specials += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    assert tok.token_to_id("<|notimestamps|>") == 50363 and tok.get_vocab_size() == 51865
    return tok


def tiny_whisper(folder: str | Path, words: int = 8, seed: int = 0) -> Path:
    """A random Whisper (d_model 64, 2+2 layers) converted to CTranslate2 in `folder`.

    Untied embeddings, else the decoder repeats one token. Every segment decodes to `words`
    pseudo-words: a random decoder would otherwise stop at random or run to the 448-token
    limit.
    """
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    folder = Path(folder)
    if (folder / "model.bin").is_file():
        return folder
    torch.manual_seed(seed)
    tok = whisper_tokenizer()
    eot, sot = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=tok.get_vocab_size(),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        tie_word_embeddings=False,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
    )
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Residual dimension 0 carries a stop signal: 0 until `words` text tokens are out
        # (after the 4-token prompt), large after; no layer writes to it, and only
        # <|endoftext|> reads it. Special and timestamp tokens are never chosen.
        decoder = model.model.decoder
        for layer in decoder.layers:
            for out in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc2):
                out.weight[0], out.bias[0] = 0.0, 0.0
        decoder.embed_tokens.weight[:, 0] = 0.0
        decoder.embed_positions.weight[:, 0] = 0.0
        decoder.embed_positions.weight[3 + words :, 0] = 50.0
        model.proj_out.weight[eot:] = 0.0
        model.proj_out.weight[eot, 0] = 2.0
    model.generation_config = GenerationConfig(  # CTranslate2 reads the language ids here
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        lang_to_id={f"<|{c}|>": tok.token_to_id(f"<|{c}|>") for c in LANGUAGES},
        task_to_id={"translate": 50358, "transcribe": 50359},
        no_timestamps_token_id=50363,
        is_multilingual=True,
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
    )
    with tempfile.TemporaryDirectory() as src:
        model.save_pretrained(src)
        WhisperTokenizerFast(tokenizer_object=tok, unk_token="<|endoftext|>").save_pretrained(src)
        WhisperFeatureExtractor(feature_size=80).save_pretrained(src)
        TransformersConverter(
            src, copy_files=["tokenizer.json", "preprocessor_config.json"]
        ).convert(str(folder), force=True)
    return folder


def tiny_aligner(folder: str | Path, seed: int = 0) -> Path:
    """A random wav2vec2 CTC model (one layer, width 32) over English letters, with its
    processor, loadable by `whisperx.load_align_model(model_name=folder)`."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({c: i + 4 for i, c in enumerate(ALIGN_CHARS)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def nltk_data(folder: str | Path) -> Path:
    """An NLTK data folder with English punkt_tab (empty parameter tables split sentences at
    every period), so `whisperx.align` never tries to download it. Put it on `nltk.data.path`."""
    punkt = Path(folder) / "tokenizers" / "punkt_tab" / "english"
    punkt.mkdir(parents=True, exist_ok=True)
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        (punkt / name).touch()
    return Path(folder)
