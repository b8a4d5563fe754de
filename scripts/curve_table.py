"""Learning curves of several runs side by side, as a markdown table read from their metrics.jsonl.

One row per validation step kept (every ``--every``-th), one column pair per run: the validation
median error (the verifiers' d1) and accuracy within 5%, with the minutes the run had trained.

    python scripts/curve_table.py /root/lf-runs/eigvec-plain /root/lf-runs/eigvec-signfree --every 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from linalgformer.tracking import read_metrics


def validations(run: Path) -> dict[int, dict]:
    """step -> the run's validation record at that step."""
    return {int(r["step"]): r for r in read_metrics(run)
            if r.get("kind") == "eval" and "median_d1" in r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=1000, help="keep the steps that are multiples of this")
    args = parser.parse_args()
    curves = {run: validations(run) for run in args.runs}
    steps = sorted({s for c in curves.values() for s in c if s % args.every == 0 or s == max(c)})
    print("| step | " + " | ".join(f"{run.name}: median d1 | within 5% | minutes" for run in args.runs) + " |")
    print("|---|" + "---|---|---|" * len(args.runs))
    for step in steps:
        cells = []
        for run in args.runs:
            r = curves[run].get(step)
            cells += ["-", "-", "-"] if r is None else [f"{r['median_d1']:.3f}", f"{100 * r['acc@0.05']:.1f}%",
                                                       f"{r.get('elapsed', 0) / 60:.1f}"]
        print(f"| {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
