# Two commands:
#   make run    the whole course through papermill (smoke profile), then prints where it landed
#   make test   pytest (what .ci/run calls)
# Both create .venv if missing and (re)install only when pyproject.toml changed, so a second call
# goes straight to the work. Knobs: make run PROFILE=cpu ONLY=01,03 JOBS=1 ARGS="--data-root DIR"
#                                   make test PYTEST_ARGS="-m 'not slow' -x"
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
PROFILE ?= smoke
JOBS ?= 2
ONLY ?=
ARGS ?=
PYTEST_ARGS ?=
# pip's notices about the machine's local package folders are noise here.
QUIET_PIP := 2>&1 | grep -v -e "^WARNING: Location" -e "^$$" || true

.PHONY: run test install install-dev clean-venv

run: $(VENV)/.installed
	@$(VENV)/bin/defectlib run --profile $(PROFILE) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY)) $(ARGS)

test: $(VENV)/.installed-dev
	@$(PY) -m pytest -q $(PYTEST_ARGS)

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (or: make PYTHON=/path/to/python3.11)"; exit 1; }
	@echo "creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)

# torch==2.14.1 and torchvision==0.29.1 are pinned in pyproject.toml.
$(VENV)/.installed: pyproject.toml | $(PY)
	@echo "installing defectlib and its dependencies into $(VENV) (first time only)"
	@$(PIP) install -e . $(QUIET_PIP)
	@$(PY) -c "import defectlib, torch, torchvision, papermill" && touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	@echo "installing the dev extras (pytest and the metric oracles)"
	@$(PIP) install -e '.[dev]' $(QUIET_PIP)
	@$(PY) -c "import pytest, pycocotools" && touch $@

clean-venv:
	rm -rf $(VENV)
