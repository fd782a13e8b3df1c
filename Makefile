# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest format bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tokenomy prices

lint: $(STAMP)
	$(BIN)/ruff check tokenomy tests bench
	$(BIN)/ruff format --check tokenomy tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser
	$(BIN)/pytest -q

# The HTML report's test renders the page in headless Chromium; install it when we can.
browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) ) || \
		echo "chromium not installed: the browser test of the HTML report will be skipped"

test: lint typecheck pytest

format: $(STAMP)
	$(BIN)/ruff format tokenomy tests bench
	$(BIN)/ruff check --fix tokenomy tests bench

bench: $(STAMP)
	@echo "Each benchmark runs on its own; see docs/benchmarks.md"

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
