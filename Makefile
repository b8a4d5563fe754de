# Every target creates .venv itself. torch is pinned to the CPU build that lies on this disk;
# an unpinned torch would pull a multi-GB CUDA build.
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

# The main job on a built-in default: train 3x3 transpose on the CPU (a few minutes; re-running
# resumes the same run), then the evaluation table and one prediction. Training stops by steps or
# at the target, not by minutes (a busy machine takes longer); the demo says plainly, and exits
# non-zero, if the run stopped short of its target. OMP_WAIT_POLICY=PASSIVE: threads that wait
# for a core sleep instead of spinning (docs/PERFORMANCE.md, "a busy machine").
DEMO_RUN ?= runs/demo
demo: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) -m linalgformer train --config configs/demo.yaml --out $(DEMO_RUN)
	$(PY) scripts/demo_reached.py $(DEMO_RUN)
	$(PY) -m linalgformer evaluate $(DEMO_RUN) --count 1000
	$(PY) -m linalgformer predict $(DEMO_RUN) --matrix "[[1.5,-2,3],[4,0.25,-6],[7,8,9]]"

test: $(STAMP)
	.venv/bin/ruff check src tests benchmarks scripts examples
	$(PY) -m pytest -q

test-fast: $(STAMP)
	.venv/bin/ruff check src tests benchmarks scripts examples
	$(PY) -m pytest -q -m "not slow"

# CPU benchmarks with small step counts (a few minutes; docs/PERFORMANCE.md has the full runs).
# Heavy runs take a shared lock when flock exists, so that two never time each other.
BENCH_LOCK := $(shell command -v flock >/dev/null 2>&1 && echo flock /tmp/linalgformer-train.lock)
bench: $(STAMP)
	$(PY) benchmarks/generate.py --count 2048 --repeats 2
	$(BENCH_LOCK) $(PY) benchmarks/train.py --configs reference,eigen,mixed --rounds 2 --per-round 1 --eigen-rounds 1
	$(BENCH_LOCK) $(PY) benchmarks/decoding.py --rounds 1

clean:
	rm -rf .venv runs build *.egg-info src/*.egg-info
