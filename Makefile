# Leadflow. `make run` starts everything on the embedded stack; `make test` installs and runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install browser run demo test soak lint fmt bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/leadflow up

# Against a running `make run` (another terminal): a seeded quarter of B2B activity through the public APIs.
demo: install
	$(BIN)/leadflow demo $(DEMO_ARGS)

# A fixed hash seed: the fuzz's generated requests (and so any failure) are the same on every run.
test: install browser
	PYTHONHASHSEED=0 $(BIN)/pytest

# The dashboard test drives Debian's headless Chromium; CI machines start without it (they run as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

soak: install
	$(BIN)/pytest -m soak -o addopts="-ra" -s

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy shared services tests bench

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .leadflow .pytest_cache .mypy_cache .ruff_cache
