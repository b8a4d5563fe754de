"""How well `predict`'s warning that a question lies outside the training data predicts a wrong answer.

For a model, every family of the robustness suite at every trained size: ``--count`` seeded
questions, the model's answers scored at 5%, and the novelty warning (problems.charton.novelty:
exact zeros, decades of magnitude, for token models the magnitude, beyond what a sample of the
training distribution spans; plus tokens never seen, for token inputs). Prints, per family and
overall, how often a wrong answer is warned and how often a right one is. (`predict` also warns
whenever the answer is not within 5% of numpy's: that part is exact by construction.)

    python benchmarks/warning_calibration.py eigenvalues-5x5 --count 100
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import linalgformer as lf
from linalgformer.problems.charton.config import dim_range
from linalgformer.suites import suite_families


def family_rows(model: lf.Model, count: int) -> dict[str, dict[str, int]]:
    experiment, problem = model.experiment, model.experiment.problem
    seen = experiment.training_sample()
    low, high = dim_range(model.config.problem)
    rows = {}
    for family in suite_families("families", problem.symmetric, problem.unusable_families):
        counts = {"wrong": 0, "wrong_warned": 0, "right": 0, "right_warned": 0}
        for dim in range(low, high + 1):
            for (_, _), test in experiment.test_problems(family, [dim]):
                examples = test.sample(np.random.default_rng([12345, dim]), count)
                answers, preds = experiment.answers(model.module, test, examples, model.device)
                scores = test.score(examples, preds) if preds is not None else test.score_matrices(examples, answers)
                right = scores.correct[0.05]
                warned = experiment.novelty(examples, seen)
                if not experiment.values_in:
                    warned = warned | unseen_any(experiment, test, examples, seen)
                counts["wrong"] += int((~right).sum())
                counts["wrong_warned"] += int((~right & warned).sum())
                counts["right"] += int(right.sum())
                counts["right_warned"] += int((right & warned).sum())
        rows[family] = counts
    return rows


def unseen_any(experiment, problem, examples, seen) -> np.ndarray:
    src = problem.encode(examples)[0]
    ids_seen = experiment.problem.encode(seen)[0]
    known = np.unique(ids_seen.ids[ids_seen.ids != experiment.vocab.pad_id])
    mask = np.arange(src.ids.shape[1])[None, :] < src.lengths[:, None]
    return (~np.isin(src.ids, known) & mask).any(axis=1)


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}% of {whole}" if whole else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a bundled model or a run directory")
    parser.add_argument("--count", type=int, default=100, help="questions per family and size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = lf.load(args.model, device="cpu")
    rows = family_rows(model, args.count)
    total = {k: sum(r[k] for r in rows.values()) for k in ("wrong", "wrong_warned", "right", "right_warned")}
    if args.json:
        print(json.dumps({"model": args.model, "count": args.count, "families": rows, "all": total}, indent=2))
        return
    print(f"{args.model}: the novelty warning, {args.count} questions per family and size")
    print("| family | wrong answers warned | right answers warned |")
    print("|---|---|---|")
    for family, r in [*rows.items(), ("all", total)]:
        print(f"| {family} | {share(r['wrong_warned'], r['wrong'])} | {share(r['right_warned'], r['right'])} |")


if __name__ == "__main__":
    main()
