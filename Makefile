# mmattnvis: `make demo` and `make test` set up .venv/ first (idempotent, see scripts/setup_env.sh).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup browser demo test lint bench clean-venv

setup:
	@bash scripts/setup_env.sh

demo: setup
	@$(PY) demo/run_demo.py

test: setup browser
	@$(PY) -m pytest tests $(PYTEST_ARGS)

lint: setup
	@.venv/bin/ruff check mmattnvis tools tests benchmarks
	@.venv/bin/mypy mmattnvis

# Debian's headless Chromium for tests/test_report_browser.py (Playwright drives it): installed
# with apt-get when running as root; otherwise those tests skip and say why.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "[setup] apt-get install chromium (browser tests of the report)"; \
	    apt-get install -y -q chromium >/dev/null 2>&1 \
	      || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
	      || echo "[setup] chromium could not be installed: the browser tests will skip"; \
	  else \
	    echo "[setup] no /usr/bin/chromium and not root: the browser tests will skip"; \
	  fi; \
	fi

bench: setup
	@$(PY) benchmarks/run_all.py

clean-venv:
	rm -rf .venv
