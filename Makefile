# mmattnvis: `make demo` and `make test` set up .venv/ first (idempotent, see scripts/setup_env.sh).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench clean-venv

setup:
	@bash scripts/setup_env.sh

demo: setup
	@$(PY) demo/run_demo.py

test: setup
	@$(PY) -m pytest tests $(PYTEST_ARGS)

lint: setup
	@.venv/bin/ruff check mmattnvis tools tests benchmarks
	@.venv/bin/mypy mmattnvis

bench: setup
	@$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf .venv
