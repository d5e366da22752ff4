# Two commands:
#   make run    the whole course through papermill (smoke profile), then prints where it landed
#   make test   pytest (what .ci/run calls)
# and, to read and change the course:
#   make lab    JupyterLab on the notebooks, with a kernel named "defectlib" for this venv
#   make strip  remove outputs from notebooks saved in Lab (make hooks: do it on every commit)
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

LAB_PORT ?= 8888
# JupyterLab refuses to run as root unless told; only then is it told
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: run test lab kernel strip hooks install install-dev clean-venv

run: $(VENV)/.installed
	@$(VENV)/bin/defectlib run --profile $(PROFILE) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY)) $(ARGS)

test: $(VENV)/.installed-dev
	@$(PY) -m pytest -q $(PYTEST_ARGS)

# The venv's python as a Jupyter kernel named "defectlib" (also for a JupyterLab or JupyterHub
# started from another environment: pick "Python (defectlib)"; papermill: -k defectlib).
kernel: $(VENV)/.installed
	@$(PY) -m ipykernel install --user --name defectlib --display-name "Python (defectlib)" >/dev/null
	@echo "kernel 'defectlib' -> $(abspath $(PY))"

lab: kernel
	@echo "JupyterLab on notebooks/ (kernel 'Python (defectlib)'); the URL with its token follows. Ctrl-C stops it."
	@$(VENV)/bin/jupyter lab --no-browser --ServerApp.root_dir=notebooks --port $(LAB_PORT) $(ALLOW_ROOT)

# Notebooks are committed without outputs (tests/test_notebooks_stripped.py checks it).
strip: $(VENV)/.installed-dev
	@$(VENV)/bin/nbstripout --keep-id notebooks/*.ipynb && echo "outputs removed from notebooks/*.ipynb"

# nbstripout as this clone's git filter: outputs never reach a commit, the working copy keeps them.
hooks: $(VENV)/.installed-dev
	@$(VENV)/bin/nbstripout --install && echo "nbstripout installed as this clone's git filter for *.ipynb"

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
