"""Data-generation throughput: examples/s of ``sample`` + ``encode`` for every Charton problem.

One thread (BLAS/OpenMP pinned to 1 before numpy loads), fixed seed, best of ``--repeats`` timed
runs of ``--count`` examples drawn in batches of ``--batch`` (64 = the paper's training batch).

    .venv/bin/python benchmarks/generate.py                 # table, all problems, P1000 and FP15
    .venv/bin/python benchmarks/generate.py --problems eigenvalues --encodings FP15 --json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from linalgformer.problems.charton import PROBLEMS, ProblemConfig, make_problem  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated problem names")
    parser.add_argument("--encodings", default="P1000,FP15", help="comma-separated encodings (both sides)")
    parser.add_argument("--dim", type=int, default=5)
    parser.add_argument("--batches", default="64,1024", help="comma-separated batch sizes")
    parser.add_argument("--count", type=int, default=8192, help="examples per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    return parser.parse_args(argv)


def throughput(problem, batch: int, count: int, repeats: int, seed: int) -> float:
    """Best examples/s over ``repeats`` runs of sample + encode on ``count`` examples."""
    rng = np.random.default_rng(seed)
    problem.encode(problem.sample(rng, batch))  # warm-up: tables, caches
    best = 0.0
    for _ in range(repeats):
        start, made = time.perf_counter(), 0
        while made < count:
            problem.encode(problem.sample(rng, batch))
            made += batch
        best = max(best, made / (time.perf_counter() - start))
    return best


def measure(args: argparse.Namespace) -> list[dict]:
    rows = []
    batches = [int(b) for b in args.batches.split(",")]
    for name in args.problems.split(","):
        for encoding in args.encodings.split(","):
            problem = make_problem(ProblemConfig(name=name.strip(), dim=args.dim, encoding=encoding.strip()))
            rates = {f"batch_{b}": round(throughput(problem, b, args.count, args.repeats, args.seed))
                     for b in batches}
            rows.append({"problem": problem.name, "encoding": encoding.strip(), "dim": args.dim, **rates})
    return rows


def print_table(rows: list[dict]) -> None:
    keys = [k for k in rows[0] if k.startswith("batch_")]
    header = f"{'problem':<16} {'encoding':<8} {'dim':>3} " + " ".join(f"{k.replace('batch_', 'ex/s @'):>12}" for k in keys)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['problem']:<16} {row['encoding']:<8} {row['dim']:>3} "
              + " ".join(f"{row[k]:>12,}" for k in keys))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with threadpool_limits(limits=1):
        rows = measure(args)
    result = {"single_thread": True, "count": args.count, "repeats": args.repeats, "rows": rows}
    return common.emit(result, args.json, lambda r: print_table(r["rows"]))


if __name__ == "__main__":
    raise SystemExit(main())
