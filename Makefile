# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
DEMO ?= demo
VIDEOS ?= 8
MINUTES ?= 2

.PHONY: demo test lint system-deps browser-deps install install-dev install-whisperx clean

# espeak-ng voices the sample videos; ffmpeg is the reference the benchmarks compare against.
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! command -v ffmpeg >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing espeak-ng and ffmpeg (Debian/Ubuntu packages)"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq espeak-ng ffmpeg >/dev/null; \
	fi

# chromium (driven by playwright, which downloads no browser) opens the HTML reports in the tests.
browser-deps:
	@if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing chromium (Debian package, ~470 MB)"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is installed first and pinned: a bare `torch` requirement pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev,embed]'
	touch $@

# WhisperX (asr.backend=whisperx). whisperx 3.8.6 pins torch~=2.8, torchaudio, torchvision,
# triton and CUDA packages (~4 GB): it goes in with --no-deps, its other requirements (the
# `whisperx` extra) under the torch constraint. torchaudio is published only as CUDA builds for
# other torch releases, whose compiled libraries cannot load here; whisperx and pyannote need
# only its Python parts, which torchaudio imports on their own when the libraries are absent.
$(VENV)/.installed-whisperx: $(VENV)/.installed
	$(PIP) -e '.[whisperx]'
	$(PIP) --no-deps whisperx==3.8.6
	$(BIN)/python -c "import importlib.util as u, pathlib as p; \
	  [f.unlink() for f in (p.Path(u.find_spec('torchaudio').origin).parent / 'lib').glob('*.so')]"
	$(BIN)/python -c "import whisperx.asr, whisperx.alignment"
	touch $@

install: system-deps $(VENV)/.installed
install-dev: system-deps browser-deps $(VENV)/.installed-dev $(VENV)/.installed-whisperx
install-whisperx: $(VENV)/.installed-whisperx

demo: install
	rm -rf $(DEMO)/dataset $(DEMO)/model $(DEMO)/report  # the demo's own outputs, remade each run
	$(BIN)/vidray sample $(DEMO)/videos --videos $(VIDEOS) --minutes $(MINUTES) --seed 0
	$(BIN)/vidray build $(DEMO)/videos --output $(DEMO)/dataset asr.pocketsphinx.vocabulary=$(DEMO)/videos/vocabulary.txt
	$(BIN)/vidray train $(DEMO)/dataset --model-dir $(DEMO)/model
	$(BIN)/vidray eval --model-dir $(DEMO)/model
	$(BIN)/vidray report $(DEMO)/dataset --model-dir $(DEMO)/model --out $(DEMO)/report
	$(BIN)/vidray score $(DEMO)/dataset --truth $(DEMO)/videos --model-dir $(DEMO)/model --examples 6 --out $(DEMO)/score.json --brief

lint: install-dev
	$(BIN)/ruff check vidray tests bench
	$(BIN)/ruff format --check vidray tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -m "not gpu" tests

clean:
	rm -rf $(DEMO) .pytest_cache .mypy_cache .ruff_cache
