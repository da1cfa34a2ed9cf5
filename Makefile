# ppad-nb: the two README commands (`make demo`, `make test`) and the developer chores.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned here (CI and development); pyproject.toml gives users looser ranges.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install test export check-sync nbtest chromium pytest demo lab bench notebooks readme clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" $(TORCH_PINS)
	@touch $(STAMP)

install: $(STAMP)

## export: notebooks -> ppad_nb/, and the packaged copy of the presets
export: install
	$(BIN)/nbdev-export
	cp settings.ini ppad_nb/assets/settings.ini

## check-sync: nbdev-export and nbdev-clean must leave nbs/ and ppad_nb/ exactly as committed
check-sync: install
	@fingerprint() { find nbs ppad_nb settings.ini -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha1sum | sha1sum; }; \
	before=$$(fingerprint); \
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean && cp settings.ini ppad_nb/assets/settings.ini; \
	after=$$(fingerprint); \
	if [ "$$before" != "$$after" ]; then \
		echo "nbdev-export / nbdev-clean changed nbs/ or ppad_nb/: run 'make export', 'nbdev-clean' and commit the result."; \
		git status --short -- nbs ppad_nb 2>/dev/null; exit 1; \
	else echo "notebooks and package in sync"; fi

nbtest: install
	$(BIN)/nbdev-test --timing

## chromium: the browser of tests/browser, found or got the way this machine allows (tools/get_chromium.sh: as root on
## Debian/Ubuntu `apt-get install -y chromium`, else Playwright's own download); one line says how when neither works
chromium: install
	@PYTHON=$(BIN)/python tools/get_chromium.sh

## pytest: tests/, the browser test of the widgets included (tests/browser: JupyterLab in headless Chromium;
## PPAD_SKIP_BROWSER=1 skips it knowingly)
pytest: install chromium
	$(BIN)/python -m pytest

test: check-sync nbtest pytest

## demo: the whole pipeline on the bundled real sample (CheXzero weights via PPAD_CLIP_WEIGHTS, else a random ViT-B/32)
demo: install
	$(BIN)/ppad-demo --out demo-output --force

## lab: JupyterLab on the chapters (nbs/), from the kit's environment (its kernel imports ppad_nb); as root it passes
## --allow-root, without a display --no-browser; `make lab LAB_ARGS="--port 9999 --ip 0.0.0.0"` passes the rest
lab: install
	@args=(--notebook-dir=nbs); \
	if [ "$$(id -u)" = 0 ]; then args+=(--allow-root); fi; \
	if [ -z "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ] && [ "$$(uname)" != Darwin ]; then args+=(--no-browser); fi; \
	echo "JupyterLab on nbs/: open the URL it prints below, http://...:PORT/lab?token=... (Ctrl-C stops it)"; \
	echo "+ jupyter lab $${args[*]} $(LAB_ARGS)"; \
	exec $(BIN)/jupyter lab "$${args[@]}" $(LAB_ARGS)

bench: install
	$(BIN)/ppad-bench sas
	$(BIN)/ppad-bench infer
	$(BIN)/ppad-bench train

## notebooks: execute every notebook in full and keep its outputs (pictures on GitHub), then clean
notebooks: install
	$(BIN)/python tools/run_notebooks.py
	$(BIN)/nbdev-clean

## readme: README.md from nbs/index.ipynb
readme: install
	$(BIN)/jupyter nbconvert --to markdown nbs/index.ipynb --output-dir . --output README --log-level WARN
	@sed -i 's#](images/#](nbs/images/#g' README.md

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
