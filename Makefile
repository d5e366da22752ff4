# Two commands: `make run` (the whole course, smoke profile) and `make test` (pytest).
# Both create .venv if missing and install only when pyproject.toml changed, so a second run is quiet.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
PROFILE ?= smoke

.PHONY: run test clean-venv

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import defectlib, torch, torchvision" && touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import pytest, pycocotools" && touch $@

run: $(VENV)/.installed
	@$(VENV)/bin/defectlib run --profile $(PROFILE)

test: $(VENV)/.installed-dev
	@$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
