# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   builds .venv, then runs the main job on the built-in synthetic benchmark into runs/demo/
#   make test   builds .venv, then runs the unit tests and the notebooks (nbval, tiny benchmark)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test clean-runs

setup: $(STAMP)

# torch is only bounded below in pyproject.toml: pip picks the build this machine offers.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[notebooks,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tsplab demo --out runs/demo

# Unit tests first, then every notebook executed top to bottom in numeric order on the tiny benchmark size
# (they chain through runs/tiny/).
test: $(STAMP)
	$(PY) -m pytest tests
	$(PY) -m pytest --nbval-lax -p no:cacheprovider notebooks

clean-runs:
	rm -rf runs/tiny runs/demo
