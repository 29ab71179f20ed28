# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements.txt
PORT ?= 8501

.PHONY: run test lint bench train-synthetic browser clean

# (Re)install when the venv is missing or requirements.txt differs from what was installed.
$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@cp requirements.txt $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run dashboard/app.py --server.port $(PORT)

# Debian's chromium for the real-browser test (playwright drives /usr/bin/chromium).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: $(STAMP) browser
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/explainers.py

train-synthetic: $(STAMP)
	$(PY) -m zoo.train_synthetic

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
