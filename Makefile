# Every target sets itself up: a fresh clone needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck pytest format bench clean browser

# the editable install also compiles the C line sift (tokenomy/sources/_csift.c) in place
$(STAMP): pyproject.toml setup.py tokenomy/sources/_csift.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main jobs on the bundled samples (examples/, real public runs; see examples/LICENSE-NOTES.md).
demo: $(STAMP)
	@echo "\n== Where did the tokens go? (tokenomy report examples/claude-code)\n"
	@$(BIN)/tokenomy report examples/claude-code --no-index
	@echo "\n== Why did the cache miss, and what did it cost? (tokenomy doctor examples/claude-code)\n"
	@$(BIN)/tokenomy doctor examples/claude-code
	@echo "\n== What would each caching policy cost? (tokenomy simulate examples/openhands)\n"
	@$(BIN)/tokenomy simulate examples/openhands
	@echo "\n== Prices (tokenomy prices claude-sonnet-4-6)\n"
	@$(BIN)/tokenomy prices claude-sonnet-4-6

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
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache tokenomy/sources/_csift*.so
