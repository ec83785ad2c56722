# Entry points; the README documents each. PYTHON is the interpreter everything runs under.
PYTHON ?= python3
TORCH ?= 2.13.0

.PHONY: install test test-slow test-all lint format

# torch is pinned first: the local CPU wheel (an unpinned torch pulls a CUDA build of several
# gigabytes). Then the C++ Functions are built, once per content (softmaxloss/_cpu_ext.py).
# The loss (softmaxloss, .) and its measuring tools (lossbench, tools/), both editable.
install:
	$(PYTHON) -m pip install -q "torch==$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[dev]" -e ./tools
	$(PYTHON) -m softmaxloss build-ext

# test: the fast suite (everything not marked slow). test-slow: the slow tests only (scratch
# asv environments, the gate's detection, the browser). test-all: both, as .ci/run does.
# Both run their tests in parallel (pytest-xdist, work stealing; the tests are
# single-threaded): the fast suite on up to 4 cores, the slow tests two at once (each in its
# own scratch repository, HOME and asv environment). TEST_ARGS= / SLOW_ARGS= run them serially.
TEST_ARGS ?= -n auto --maxprocesses 4 --dist worksteal
SLOW_ARGS ?= -n 2 --dist worksteal
test: install
	$(PYTHON) -m pytest -m "not slow" --durations=10 $(TEST_ARGS)

test-slow: install
	$(PYTHON) -m pytest -m slow --durations=15 $(SLOW_ARGS)

test-all: install
	$(PYTHON) -m pytest --durations=15 $(SLOW_ARGS)

# lint: ruff, then the docs against their measurement records (docs/measurements/README.md).
lint: install
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m ruff check .
	$(LB) docs render --check

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

# ---- asv suite (README "Measuring tools", docs/benchmarks.md, docs/gate.md) ----------------
# LB: the measuring tools (python -m lossbench), run from this checkout: tools/ on the path,
# nothing installed.
LB = PYTHONPATH="$(CURDIR)/tools$${PYTHONPATH:+:$$PYTHONPATH}" $(PYTHON) -m lossbench
# GATE_BENCH: overrides the gate's selection (an asv -b regex; the default, in
# tools/lossbench/gate.py, is instruction counts, time, memory and precision without the
# Slow* classes). The thresholds (one per metric family) live there too; GATE_ARGS passes
# more, e.g. GATE_ARGS="--threshold time=1.5". TV_BENCH: the torch-versions selection.
ASV ?= $(PYTHON) -m asv
# FACTOR: the ratio the torch-versions table flags (same code, two torch builds).
FACTOR ?= 2.0
GATE_BENCH ?=
GATE_ARGS ?=
TV_BENCH ?= ^bench_(time|memory|precision)\.(?!Slow)
TV_CONFIG ?= asv.torch-versions.conf.json
TV_BASE ?= 2.13.0
TV_OTHER ?= 2.14.1
# Evaluated once, on first use (each is a Python start with a torch import).
MACHINE = $(eval MACHINE := $$(shell $(LB) machine name))$(MACHINE)
LAUNCH = $(eval LAUNCH := $$(shell $(LB) machine launch))$(LAUNCH)

.PHONY: bench-deps valgrind asv-machine bench bench-full bench-quick gate detection-power bisect \
  torch-versions

# What the asv targets need in $(PYTHON): asv, and what `python -m lossbench` (run from this
# checkout, not installed) imports: torch (pinned: the local CPU wheel), numpy, rich.
# (pip runs only when one is missing: each make target would otherwise pay for it)
bench-deps:
	@$(PYTHON) -c "from importlib.metadata import version as v; \
	  assert v('torch').startswith('$(TORCH)') and v('asv') == '0.6.6'; \
	  [v(p) for p in ('numpy', 'rich', 'virtualenv')]" 2>/dev/null || \
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q --disable-pip-version-check \
	  "torch==$(TORCH)" numpy "rich>=13" "asv==0.6.6" "virtualenv>=20"

# valgrind runs the instruction counts (benchmarks/bench_instructions.py). Installed with
# apt-get where there is one (as root, or with sudo). This step never fails itself; without
# valgrind, the gate, history and backfill refuse to start (exit 3) unless told to leave
# those families out (SKIP_FAMILY=instructions,cycles), and asv fails those benchmarks.
valgrind:
	@command -v valgrind >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "valgrind: not installed, no apt-get: instruction counts will be skipped" >&2; exit 0; fi; \
	  if [ "$$(id -u)" = 0 ]; then S=; else S="sudo -n"; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$S apt-get install -y -q valgrind >/dev/null 2>&1 || \
	  { $$S apt-get update -q >/dev/null 2>&1 && $$S apt-get install -y -q valgrind >/dev/null 2>&1; } || \
	  echo "valgrind: could not install it: instruction counts cannot run" >&2; }

# asv's machine file (~/.asv-machine.json); its questionnaire goes to /dev/null.
asv-machine: bench-deps
	@$(ASV) machine --yes --machine "$(MACHINE)" > /dev/null

# asv run's output through `asv-quiet`: progress, failures with their stderr, one line
# counting the skipped parameter combinations by reason; asv's exit status is kept.
QUIET = $(LB) asv-quiet --

# The main job: builds the environment, runs the suite on HEAD, publishes the site. `make
# bench` runs the main grid (BENCH_ARGS: every benchmark but the Slow* classes, the
# torch.compile entries and their compile times, 2 rounds of 3 samples); `make bench-full`
# the whole suite at its own settings (much longer). A failed benchmark (asv exit 2) still
# gets the site published, then fails the target.
BENCH_ARGS ?= -b '^(?!bench_compile\.)(?!\w+\.Slow)(?!.*\(.compiled)' -a rounds=2 -a repeat=3
bench: asv-machine valgrind
	@rc=0; $(QUIET) $(ASV) run --machine "$(MACHINE)" $(LAUNCH) --show-stderr $(BENCH_ARGS) \
	  HEAD^! || rc=$$?; \
	$(MAKE) --no-print-directory site || exit $$?; \
	echo "bench: asv run exit $$rc; serve the site with: make preview"; exit $$rc

bench-full:
	$(MAKE) --no-print-directory bench BENCH_ARGS=

# Every benchmark once, in this interpreter (no environment build, nothing saved): the
# torch.compile entries in one smoke case (each process compiles again), the depth
# experiment's grid in one case per implementation.
QUICK_ARGS ?= -b '^(?!bench_compile\.)(?!bench_depth\.)(?!.*\(.compiled)' \
  -b '^bench_time\.TimeSoftmaxLoss\.time_forward\(.compiled., .128x100., .float32., .cpu.\)' \
  -b '^bench_depth\.DepthGradientError\.track_first_layer_error\(.\w+., .float32., 4, 64\)'
bench-quick: asv-machine
	$(PYTHON) -m softmaxloss build-ext
	$(QUIET) $(ASV) run -E existing:$(PYTHON) --quick --dry-run --show-stderr \
	  --machine "$(MACHINE)" $(QUICK_ARGS)

# make gate BASE=<rev>: BASE vs HEAD (python -m lossbench gate). The command exits 1 on a
# regression, 2 on bad input and 3 when it could not measure everything it selected; make
# itself turns any failure into exit 2, so the command's last line gives its own status (CI
# calls the command). SKIP_FAMILY=instructions,cycles: go on without valgrind, said so.
SKIP_FAMILY ?=
SKIP = $(if $(SKIP_FAMILY),--skip-family '$(SKIP_FAMILY)')
gate: asv-machine valgrind
	@test -n "$(BASE)" || { echo "usage: make gate BASE=<rev>" >&2; exit 2; }
	$(LB) gate '$(BASE)' --machine "$(MACHINE)" $(LAUNCH) \
	  $(if $(GATE_BENCH),--bench '$(GATE_BENCH)') $(SKIP) $(GATE_ARGS)

# The gate's detection power on a scratch history (hours with the defaults; docs/gate.md).
# DETECTION_ARGS: e.g. "--runs 2 --noops 4".
DETECTION_ARGS ?=
detection-power: bench-deps valgrind
	$(LB) detection-power $(DETECTION_ARGS)

# make bisect GOOD=<rev> BAD=<rev> BENCH=<regex> [IMPL=<name>]: asv find over GOOD..BAD;
# prints the first bad commit. Instruction counts make the search deterministic, e.g.
# BENCH="track_backward\(.manual., .1024x1000." IMPL=manual (IMPL: count that one only).
IMPL ?=
bisect: asv-machine valgrind
	@test -n "$(GOOD)" -a -n "$(BAD)" -a -n "$(BENCH)" || \
	  { echo "usage: make bisect GOOD=<rev> BAD=<rev> BENCH=<regex> [IMPL=<name>]" >&2; exit 2; }
	$(LB) bisect '$(GOOD)' '$(BAD)' --bench '$(BENCH)' \
	  --machine "$(MACHINE)" $(LAUNCH) $(if $(IMPL),--impl '$(IMPL)')

# Same commit under torch TV_BASE and TV_OTHER (2.14.1: a CUDA build of several gigabytes).
torch-versions: asv-machine
	$(ASV) run --config $(TV_CONFIG) --machine "$(MACHINE)" $(LAUNCH) --show-stderr \
	  -b '$(TV_BENCH)' HEAD^! || [ $$? -eq 2 ]
	$(MAKE) --no-print-directory site ASV_CONF=$(TV_CONFIG)
	$(LB) torch-versions --config $(TV_CONFIG) --machine "$(MACHINE)" \
	  --base $(TV_BASE) --other $(TV_OTHER) --factor $(FACTOR) HEAD

# ---- history: the suite over past commits; docs/history.md -------------------------------
# make history [N=20 | RANGE=a..b] [BENCH=regex]: asv run --skip-existing over the first-parent
# commits of main (oldest first, "commit k of N" and the time left), then make site.
# make backfill-local SHARDS=2 [N=.. | RANGE=..]: the CI backfill's shards as separate local
# processes (own clone, HOME, environment), checked merge into .asv/results, then make site.
# Exit: 0 ok; 2 bad input or a failed merge check (nothing run or written, no site); 3 a
# benchmark or asv failed (what was measured is kept; the site is still published).
SHARDS ?= 2
# N= or RANGE= given empty is passed on (and refused), not read as "not given".
HISTORY_SEL = $(if $(filter undefined,$(origin N)),,-n '$(N)') \
  $(if $(filter undefined,$(origin RANGE)),,--range '$(RANGE)')
HISTORY_OPTS = --machine "$(MACHINE)" $(LAUNCH) $(if $(BENCH),-b '$(BENCH)') $(SKIP)

.PHONY: history backfill-local record

history: bench-deps valgrind
	@rc=0; $(LB) history $(HISTORY_SEL) $(HISTORY_OPTS) || rc=$$?; \
	if [ $$rc -ne 2 ]; then $(MAKE) --no-print-directory site || exit $$?; fi; exit $$rc

# make record: what .github/workflows/history.yml does on every push to main, here: the
# suite on HEAD added to the history, the site published, and the regressions asv's step
# detection finds at HEAD (new ones only). Exit 1: a deterministic family regressed.
record: bench-deps valgrind
	@mkdir -p .asv && git rev-parse HEAD > .asv/record-commit.txt
	@rc=0; $(LB) history --commits-file .asv/record-commit.txt $(HISTORY_OPTS) || rc=$$?; \
	if [ $$rc -eq 2 ]; then exit 2; fi; \
	$(MAKE) --no-print-directory site || exit $$?; \
	$(LB) regressions HEAD --config $(ASV_CONF) || exit $$?; exit $$rc

backfill-local: bench-deps valgrind
	@rc=0; $(LB) backfill-local --shards '$(SHARDS)' $(HISTORY_SEL) \
	  $(HISTORY_OPTS) || rc=$$?; \
	if [ $$rc -ne 2 ]; then $(MAKE) --no-print-directory site || exit $$?; fi; exit $$rc

# ---- benchmark site: offline asv html site (docs/benchmarks.md) --------------------------
# `site`: asv publish, then the front-page summary (fastest / most precise) and the offline
# rewrite (CDN scripts/styles -> local copies from the asv 0.5.1 sdist on PyPI, cached in
# .asv/vendor-cache). Both steps are re-applied after every publish (publish recreates the dir).
# `preview`: serves the html dir on 127.0.0.1 only (asv preview binds 0.0.0.0).
ASV_CONF ?= asv.conf.json
SITE_DIR ?= .asv/html
PORT ?= 8080

.PHONY: site preview

site: bench-deps
	$(PYTHON) -m asv publish --config $(ASV_CONF)
	$(LB) site-summary --config $(ASV_CONF)
	$(LB) offline-site --config $(ASV_CONF)
	@echo "site: $(SITE_DIR)/index.html (open with: make preview)"

preview:
	@test -f $(SITE_DIR)/index.html || { echo "preview: no $(SITE_DIR)/index.html: run make site first" >&2; exit 1; }
	@echo "preview: http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	$(PYTHON) -m http.server --bind 127.0.0.1 --directory $(SITE_DIR) $(PORT)
# ---- end benchmark site -------------------------------------------------------------------

# ---- the docs' measured figures (docs/measurements/README.md) ------------------------------
# measurements: re-runs the measuring command of every record in docs/measurements/ on this
# machine, one after the other (headline first; MEASURE_ONLY=ratios,compare: those alone),
# each writing its record, then renders the docs' tables from them. docs: renders only.
MEASURE_ONLY ?=
.PHONY: measurements docs

measurements: bench-deps valgrind
	$(LB) docs measure $(if $(MEASURE_ONLY),--only '$(MEASURE_ONLY)')

docs:
	$(LB) docs render
