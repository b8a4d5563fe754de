"""Time to accuracy: Charton's nine problems at 5x5, the paper's recipe against ours, same budget.

For each problem (its preset in ``configs/``) two runs are trained, each on one CPU thread for the
same wall-clock budget:

* ``paper``: the preset as written (encoding, learned positions, learning rate, warmup, schedule)
  at a CPU-sized model: the preset's layer counts, width 128, 4 heads;
* ``ours``: the preset's ``cpu`` scale (``linalgformer reproduce NAME --scale cpu`` trains it),
  the best recipe found on this machine with the paper's tokens (matrix-aware positions, value
  features, structural bias, gated FFN, ...);
* ``values``: the problem's continuous preset (``configs/*-5x5-continuous.yaml``): numbers by value
  in and out (``models/number_values.py``), the same verifiers and tolerances.

Every number of a row is read from the run's metrics.jsonl (its evaluations on the fixed, seeded
validation set, greedy decoding): the best accuracy at 5% and 1% reached within the budget, the
lowest median relative error d1 (progress that accuracy does not show yet; inf: mostly invalid), the
examples seen and minutes trained, and the minutes to first reach 50% and 90% at 5%. A run longer
than the budget (e.g. a bundled model's hour) is read up to the budget only. Every row names the
command that reproduces it. ``--jobs 2`` trains two runs at a time (one thread each); runs already
in ``--runs`` are resumed, so a table can be built over several sessions.

    python benchmarks/time_to_accuracy.py --minutes 30 --jobs 2 --runs runs/tta --plot docs/tta.png
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from linalgformer.config import load_yaml
from linalgformer.reproduce.presets import PRESET_DIR, scale_overrides
from linalgformer.tracking import read_metrics

PRESETS = {  # problem -> its 5x5 preset
    "transpose": "transpose-5x5",
    "matrix_sum": "matrix-sum-5x5",
    "matrix_vector": "matrix-vector-5x5",
    "matrix_product": "matrix-product-5x5",
    "eigenvalues": "eigenvalues-5x5-fp15",
    "eigenvectors": "eigenvectors-5x5",
    "invert_matrix": "invert-5x5",
    "singularvalues": "singularvalues-5x5",
    "singularvectors": "singularvectors-5x5",
}
CONTINUOUS_PRESETS = {  # problem -> its preset with numbers by value
    "transpose": "transpose-5x5-continuous",
    "matrix_sum": "matrix-sum-5x5-continuous",
    "matrix_vector": "matrix-vector-5x5-continuous",
    "matrix_product": "matrix-product-5x5-continuous",
    "eigenvalues": "eigenvalues-5x5-continuous",
    "eigenvectors": "eigenvectors-5x5-continuous",
    "invert_matrix": "invert-5x5-continuous",
    "singularvalues": "singularvalues-5x5-continuous",
    "singularvectors": "singularvectors-5x5-continuous",
}
CPU_MODEL = {"model.width": 128, "model.heads": 4}
RECIPES = ("paper", "ours", "values")


def recipe_overrides(preset: str, recipe: str, minutes: float) -> dict:
    """The --set overrides of a recipe: the paper's at a CPU-sized model, the preset's cpu scale, or
    none (the continuous preset as written)."""
    protocol = load_yaml(PRESET_DIR / f"{preset}.yaml").get("reproduce") or {}
    fixed = {"paper": dict(CPU_MODEL), "values": {}}
    scale = fixed[recipe] if recipe in fixed else scale_overrides(preset, protocol, "cpu")
    budget = {"train.max_minutes": minutes, "train.max_steps": 10**7, "train.threads": 1,
              "train.target_metric": 0, "train.eval_every": 250, "train.valid_count": 500}
    return {**scale, **budget}


def train_command(preset: str, run_dir: Path, overrides: dict) -> list[str]:
    sets = [a for key, value in overrides.items() for a in ("--set", f"{key}={json.dumps(value)}")]
    return [sys.executable, "-m", "linalgformer", "train", "--config", f"configs/{preset}.yaml",
            "--out", str(run_dir), "--quiet", *sets]


def shown(command: list[str]) -> str:
    """The command as a user would type it."""
    return shlex.join(["linalgformer", *command[3:]]).replace(" --quiet", "")


def budgets(args) -> dict[str, float]:
    """Minutes per problem: --minutes, except where --minutes-for says otherwise."""
    out = dict.fromkeys(PRESETS, args.minutes)
    for item in filter(None, args.minutes_for.split(",")):
        problem, minutes = item.split("=")
        out[problem.strip()] = float(minutes)
    return out


def run_one(problem: str, recipe: str, args) -> dict:
    minutes = budgets(args)[problem]
    run_dir = Path(args.runs) / f"{PRESETS[problem]}-{recipe}"
    preset = CONTINUOUS_PRESETS[problem] if recipe == "values" else PRESETS[problem]
    command = train_command(preset, run_dir, recipe_overrides(preset, recipe, minutes))
    if not args.table_only:
        print(f"training {run_dir} ({minutes:g} min)", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return dict(problem=problem, recipe=recipe, run=str(run_dir), command=shown(command), budget=minutes,
                model=model_line(run_dir), **curve_facts(read_metrics(run_dir), minutes))


def model_line(run_dir: Path) -> str:
    """e.g. "1+1 x 128, matrix pos., values, P1000 -> P1000", from the run's config.json."""
    config = json.loads((run_dir / "config.json").read_text())
    m, p = config["model"], config["problem"]
    extras = (", values" if m.get("value_features") else "") + (", bias" if m.get("position_bias") else "")
    extras += f", {m['ffn']}" if m.get("ffn", "relu") != "relu" else ""
    extras += ", row tokens" if m.get("input_units") == "rows" else ""
    extras += ", value loss" if m.get("value_loss") else ""
    extras += ", size curriculum" if p.get("curriculum") else ""
    coders = f"{p.get('input_encoding') or p['encoding']} -> {p.get('output_encoding') or p['encoding']}"
    return f"{m['enc_layers']}+{m['dec_layers']} x {m['width']}, {m['positions']} pos.{extras}, {coders}"


def curve_facts(records: list[dict], budget: float) -> dict:
    """What a row shows, from a run's metrics records up to ``budget`` minutes of training."""
    kept = [r for r in records if r.get("kind") in ("train", "eval") and r.get("elapsed", 0) <= budget * 60]
    evals = [r for r in kept if r["kind"] == "eval"]
    first = lambda level: next((r["elapsed"] / 60 for r in evals if r.get("acc@0.05", 0) >= level), None)  # noqa: E731
    best = lambda key: max((r.get(key, 0.0) for r in evals), default=0.0)  # noqa: E731
    last = kept[-1] if kept else {"examples": 0, "elapsed": 0.0}
    d1 = min((r.get("median_d1", float("inf")) for r in evals), default=float("inf"))
    return {"acc5": best("acc@0.05"), "acc1": best("acc@0.01"), "d1": d1, "examples": last["examples"],
            "minutes": last["elapsed"] / 60, "to_50": first(0.5), "to_90": first(0.9),
            "curve": [(r["elapsed"] / 60, r.get("acc@0.05", 0.0)) for r in evals]}


def minutes(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(rows: list[dict]) -> str:
    head = ("| problem | recipe | model | budget (min) | acc 5% | acc 1% | median d1 | examples | minutes | to 50% "
            "| to 90% |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['problem']} | {r['recipe']} | {r['model']} | {r['budget']:g} | {r['acc5']:.1%} | {r['acc1']:.1%} | "
             f"{'inf' if r['d1'] >= 1e300 else format(r['d1'], '.3g')} | "
             f"{r['examples']:,} | {r['minutes']:.1f} | {minutes(r['to_50'])} | {minutes(r['to_90'])} |" for r in rows]
    lines += ["", "Commands (each row's run, resumed or extended by the same command):", ""]
    lines += [f"- {r['problem']}, {r['recipe']}: `{r['command']}`" for r in rows]
    return "\n".join([head, *lines])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib  # a plotting extra: imported only when a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r["problem"] for r in rows))
    cols = min(3, len(problems))
    fig, axes = plt.subplots(-(-len(problems) // cols), cols, figsize=(4 * cols, 3 * -(-len(problems) // cols)),
                             squeeze=False)
    for ax, problem in zip(axes.flat, problems):
        for r in (r for r in rows if r["problem"] == problem):
            ax.plot([m for m, _ in r["curve"]], [a for _, a in r["curve"]], marker=".", label=r["recipe"])
        budget = max(r["budget"] for r in rows if r["problem"] == problem)
        ax.set(title=problem, xlabel="minutes (one thread)", ylabel="validation acc at 5%", ylim=(-0.02, 1.02),
               xlim=(0, budget))
        ax.legend()
    for ax in list(axes.flat)[len(problems):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def compare(run_dirs: list[str], every: int = 0) -> str:
    """Validation accuracy at 5% and median d1 of several runs after the same numbers of examples
    (every evaluation, or only after multiples of ``every`` examples)."""
    curves = {Path(d).name: {r["examples"]: r for r in read_metrics(Path(d)) if r.get("kind") == "eval"}
              for d in run_dirs}
    head = "| examples | " + " | ".join(f"{name}: acc 5%, median d1 (minutes)" for name in curves) + " |"
    lines = [head, "|---|" + "---|" * len(curves)]
    for examples in sorted({e for curve in curves.values() for e in curve if not every or e % every == 0}):
        cells = [cell(curve.get(examples)) for curve in curves.values()]
        lines.append(f"| {examples:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell(record: dict | None) -> str:
    if record is None:
        return ""
    d1 = record.get("median_d1", float("inf"))
    shown = "inf" if d1 >= 1e300 else f"{d1:.3f}"
    return f"{record.get('acc@0.05', 0.0):.1%}, {shown} ({record['elapsed'] / 60:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", default=",".join(PRESETS), help="comma-separated problem names")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per run (one thread)")
    parser.add_argument("--minutes-for", default="", help="other budgets by problem, e.g. transpose=20,matrix_sum=20")
    parser.add_argument("--runs", default="runs/tta", help="where the runs live (resumed if there)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, one thread each")
    parser.add_argument("--table-only", action="store_true", help="read the runs already there, train nothing")
    parser.add_argument("--plot", type=Path, help="write validation accuracy against minutes here (PNG)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--every", type=int, default=0, metavar="N",
                        help="with --compare: only the rows after multiples of N examples")
    parser.add_argument("--compare", nargs="+", metavar="RUN",
                        help="only print these runs' validation curves side by side, by examples seen")
    args = parser.parse_args()
    if args.compare:
        print(compare(args.compare, args.every))
        return
    cases = [(p, r) for p in args.problems.split(",") for r in args.recipes.split(",")]
    unknown = [p for p, _ in cases if p not in PRESETS] + [r for _, r in cases if r not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown problem or recipe: {unknown[0]}")
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        rows = list(pool.map(lambda case: run_one(*case, args), cases))
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
