# Entry points; the README documents each. PYTHON is the interpreter everything runs under.
PYTHON ?= python3
TORCH ?= 2.13.0

.PHONY: install test lint format

# torch is pinned first: the local CPU wheel. An unpinned torch pulls a 5.4 GB CUDA build.
install:
	$(PYTHON) -m pip install -q "torch==$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[dev]"

test: install
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m ruff check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

# ---- benchmark site (issue 6): offline asv html site -------------------------------------
# `site`: asv publish, then the front-page summary (fastest / most precise) and the offline
# rewrite (CDN scripts/styles -> local copies from the asv 0.5.1 sdist on PyPI, cached in
# .asv/vendor-cache). Both tools are re-applied after every publish (publish recreates the dir).
# `preview`: serves the html dir on 127.0.0.1 only (asv preview binds 0.0.0.0).
ASV_CONF ?= asv.conf.json
SITE_DIR ?= .asv/html
PORT ?= 8080

.PHONY: site preview

site:
	$(PYTHON) -m asv publish --config $(ASV_CONF)
	$(PYTHON) -m tools.site_summary --config $(ASV_CONF)
	$(PYTHON) -m tools.offline_site --config $(ASV_CONF)
	@echo "site: $(SITE_DIR)/index.html (open with: make preview)"

preview:
	@test -f $(SITE_DIR)/index.html || { echo "preview: no $(SITE_DIR)/index.html: run make site first" >&2; exit 1; }
	@echo "preview: http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory $(SITE_DIR) $(PORT)
# ---- end benchmark site -------------------------------------------------------------------
