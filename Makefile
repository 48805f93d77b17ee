# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DURATION ?= 0

.PHONY: install run test test-kafka soak kafka kafka-lib bench bench-pacing lint clean

# setup.py compiles the pacing engine's kernels (streams/engine/_kernels.c) in place: editing them reinstalls
$(BIN)/.installed: pyproject.toml setup.py streams/engine/_kernels.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## run the whole pipeline on the embedded broker (Ctrl-C or DURATION=seconds stops it)
run: install
	$(BIN)/pacing run --duration $(DURATION)

## the whole test suite on the embedded broker, in TEST_WORKERS processes (pytest-xdist), each with its own broker;
## the tests mostly wait on brokers and child processes, so more processes than cores pay (TEST_WORKERS=0: one process).
## Then the engine's unit tests once more on its Python reference kernels, the fallback where the compiled ones do not
## build (~10 s; not the two files that compare the compiled kernels with the reference, which need both)
TEST_WORKERS ?= 4
ENGINE_FALLBACK_TESTS := tests/unit/engine --ignore=tests/unit/engine/test_engine_reference.py \
	--ignore=tests/unit/engine/test_engine_kernels.py
test: install
	$(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) --dist worksteal
	PACING_ENGINE_KERNELS=python $(BIN)/python -m pytest -q -rs $(ENGINE_FALLBACK_TESTS)

## Apache Kafka's jars (infra/kafka/pom.xml) into infra/kafka/.cache: Maven runs only when missing or stale
kafka-lib: install
	@$(BIN)/python -m infra.kafka_broker resolve

## a single-node Apache Kafka on 127.0.0.1:9092 in the foreground until Ctrl-C (needs java and mvn)
kafka: install
	$(BIN)/pacing broker --kind kafka

## the integration tests on a single-node Apache Kafka, plus the three-node cluster tests (tests/kafka),
## the chaos soak among them for 5 minutes (tests/kafka/test_soak.py); in one process: each xdist worker
## would start its own Kafka (a JVM per node)
test-kafka: install kafka-lib
	PACING_TEST_BROKER=kafka $(BIN)/python -m pytest -q -rs tests/integration tests/kafka

## the chaos soak alone: the pipeline on three Kafka brokers under seeded faults for DURATION seconds
## (0: 300), then the invariant check; SEED=n replays a schedule; prints a table per fault kind
soak: install kafka-lib
	$(BIN)/python -m tests.kafka.soak --duration $(DURATION) $(if $(SEED),--seed $(SEED))

## throughput benchmarks side by side: the worker, Quix Streams, bare Faust, raw getmany; the sustained
## 10,000-target run (prints tables; ~15 min; BENCH_ARGS=--quick for a small run)
$(BIN)/.installed-bench: pyproject.toml $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: install $(BIN)/.installed-bench
	$(BIN)/python -m tests.benchmarks.throughput $(BENCH_ARGS)

## pacing quality benchmark in the contact-centre simulator (prints a table)
bench-pacing: install
	$(BIN)/pacing simulate --matrix

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache streams/engine/_kernels*.so
