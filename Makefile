# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements.txt
PORT ?= 8501
# The benchmarks' own environment: sees .venv's packages (a .pth file) plus the peers in requirements-bench.txt
BENCH := .venv-bench
BENCH_STAMP := $(BENCH)/.installed-requirements-bench.txt

.PHONY: run test lint bench train-synthetic browser clean

# (Re)install when the venv is missing or requirements.txt differs from what was installed.
$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
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

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	@test -x $(BENCH)/bin/python || $(PYTHON) -m venv $(BENCH)
	@$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$($(BENCH)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/project-venv.pth"
	$(BENCH)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@cp requirements-bench.txt $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH)/bin/python benchmarks/explainers.py
	$(BENCH)/bin/python benchmarks/faithfulness.py
	$(BENCH)/bin/python benchmarks/sanity.py
	$(BENCH)/bin/python benchmarks/robustness.py
	$(BENCH)/bin/python benchmarks/anatomy.py
	$(BENCH)/bin/python benchmarks/threads.py
	$(BENCH)/bin/python benchmarks/runs.py
	$(BENCH)/bin/python benchmarks/metrics.py
	$(BENCH)/bin/python benchmarks/cam_variants.py --lite0-only

train-synthetic: $(STAMP)
	$(PY) -m zoo.train_synthetic

clean:
	rm -rf $(VENV) $(BENCH) .pytest_cache .ruff_cache
