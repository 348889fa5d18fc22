# make demo: set up .venv and run the README's main job (a real CDARTS search on the bundled digits).
# make test: set up .venv and run the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/cdarts-search --config configs/demo.yaml

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile  # two workers, each file on one (test_readme runs in order)

lint: install
	$(BIN)/ruff check cdarts tests benchmarks
