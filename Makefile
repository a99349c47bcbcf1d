# ctpmaps: two commands set everything up on a fresh machine.
#   make demo   create .venv, install, run the main job on a built-in phantom study
#   make test   install what the tests need and run them
#   make bench  run the benchmarks (results into BENCHMARKS.md by hand, with machine and date)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# A CPU build of torch lies on disk on these machines; anything else pulls CUDA packages.
TORCH  ?= torch==2.13.0
DEMO_OUT ?= demo-out

.PHONY: demo test bench lint install clean browser

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ctpmaps demo $(DEMO_OUT)

# The HTML report is tested in a real headless Chromium (Debian's package); where it cannot
# be installed (not root, no apt) that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the report's browser test will skip"; \
	  else echo "chromium absent (needs root and apt-get): the report's browser test will skip"; fi; }

test: install browser
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -n 2 -q tests

bench: install
	$(PY) benchmarks/run_all.py

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) build dist src/*.egg-info
