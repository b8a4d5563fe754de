"""Ship a trained run inside the package: `python scripts/bundle_model.py RUN_DIR NAME [--count K]`.

Copies the weights, config and manifest (not the optimizer state) to src/linalgformer/bundled/NAME/
and writes card.json with the accuracy measured here by `evaluate` on a fresh seeded test set.
With --half the weights are stored in float16 (half the size; they load into the float32 model)
and the card measures that stored copy.

    python scripts/bundle_model.py runs/eig3x3 eigenvalues-3x3 --count 1000 --half
    python scripts/bundle_model.py --rebundle eigenvalues-3x3 --half   # an already bundled model, re-measured

With --answer-views K (and --view-average median) the bundled config's model.answer_views is K:
the model answers (predict, evaluate, the card and its suite) with the mean (median) over K views of
each question unless told --views; the card keeps the one-view accuracy beside it. With
--newton-steps K a continuous inversion model (model.newton_steps) answers with K Newton-Schulz
steps after its guess, whatever K it was trained with (docs/RESULTS.md 9.17)."""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

from safetensors.torch import save_file

from linalgformer import checkpoint as ckpt
from linalgformer.api import Model
from linalgformer.bundled import BUNDLED_DIR
from linalgformer.tables import evaluation_json
from linalgformer.runs import load_run, run_config_from_dict
from linalgformer.tracking import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("name")
    parser.add_argument("--half", action="store_true", help="store float16 weights (the card measures them)")
    parser.add_argument("--rebundle", action="store_true",
                        help="NAME is already bundled: convert/re-measure it in place (no RUN_DIR)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--trained-with", default="", help="the command that trained the run (for the card)")
    parser.add_argument("--views", type=int, default=1,
                        help="also measure the answers averaged over this many views (evaluate --views) for the card")
    parser.add_argument("--answer-views", type=int, default=None, metavar="K",
                        help="write model.answer_views K into the bundled config (the views it answers with by default)")
    parser.add_argument("--view-average", choices=["mean", "median"], default=None,
                        help="write model.view_average into the bundled config (how its views combine)")
    parser.add_argument("--newton-steps", type=int, default=None, metavar="K",
                        help="write model.newton_steps K into the bundled config (a continuous inversion model's refinement steps)")
    parser.add_argument("--suite-count", type=int, default=200,
                        help="examples per family and size of the card's robustness suite (0: none)")
    args = parser.parse_args()
    target = BUNDLED_DIR / args.name
    if args.rebundle:
        card = json.loads((target / "card.json").read_text())
    else:
        card = {}
        target.mkdir(parents=True, exist_ok=True)
        for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.MANIFEST):
            shutil.copy2(args.run_dir / name, target / name)
    if args.half:
        store_half(target)
    read_out = {key: value for key, value in (("answer_views", args.answer_views), ("view_average", args.view_average),
                                              ("newton_steps", args.newton_steps)) if value is not None}
    if read_out:
        set_read_out(target, read_out)
    config, experiment, model = load_run(target)  # measure what ships
    metrics = evaluation_json(experiment.evaluate(model, args.count, 12345, "cpu"))
    primary = getattr(experiment, "primary_metric", "")
    final = last_record(args.run_dir) if args.run_dir else []
    problem = getattr(config.problem, "name", None) or getattr(config.problem, "task", config.family)
    new = {"name": args.name, "family": config.family, "problem": problem,
            "description": experiment.problem.describe() if hasattr(experiment, "problem") else "",
            "accuracy": metrics.get("accuracy"), "exact": metrics.get("exact"), "invalid": metrics.get("invalid"),
            "primary_metric": primary, "metrics": {k: v for k, v in metrics.items() if isinstance(v, float)},
            "test_count": args.count, "test_seed": 12345,
            "examples_seen": final[-1]["examples"] if final else card.get("examples_seen"),
            "train_seconds": final[-1]["elapsed"] if final else card.get("train_seconds"),
            "parameters": sum(p.numel() for p in model.parameters()),
            "measured_on": f"{platform.machine()} CPU, {time.strftime('%Y-%m-%d')}",
            "weights": "float16" if args.half or card.get("weights") == "float16" else "float32",
            "command": card.get("command") or (f"python scripts/bundle_model.py {args.run_dir} {args.name} --count {args.count}"
                                               + (" --half" if args.half else ""))}
    if args.rebundle:
        new["command"] += (f"; re-measured: python scripts/bundle_model.py --rebundle {args.name}" + (" --half" if args.half else "")
                           + (f" --suite-count {args.suite_count}" if args.suite_count != 200 else "")
                           + read_out_flags(args))
    else:
        new["command"] += read_out_flags(args)
    answer_views = config.model.answer_views if config.family == "charton" else 1
    if answer_views > 1:
        experiment.set_views(1)
        alone = evaluation_json(experiment.evaluate(model, args.count, 12345, "cpu"))
        experiment.set_views(answer_views)
        new["answer_views"], new["view_average"] = answer_views, config.model.view_average
        new["one_view"] = {"accuracy": alone.get("accuracy"), "median_d1": alone.get("median_d1"),
                           "command": f"linalgformer evaluate {args.name} --count {args.count} --views 1"}
    if args.views > 1:
        experiment.set_views(args.views)
        viewed = evaluation_json(experiment.evaluate(model, args.count, 12345, "cpu"))
        experiment.set_views(answer_views)
        new["views"] = {"views": args.views, "accuracy": viewed.get("accuracy"), "median_d1": viewed.get("median_d1"),
                        "command": f"linalgformer evaluate {args.name} --count {args.count} --views {args.views}"}
    if config.family == "charton" and args.suite_count > 0:
        new["suite"] = suite_card(target, args.suite_count)
    trained_with = args.trained_with or card.get("trained_with")
    if trained_with:
        new["trained_with"] = trained_with
    (target / "card.json").write_text(json.dumps(new, indent=2) + "\n")
    print(json.dumps(new, indent=2))


def suite_card(target: Path, count: int) -> dict:
    """The families suite at every trained size, as the card keeps it (``bundled.card_rank`` reads
    its mean): accuracy at 5% per family, per family and size, the mean over cells and the worst."""
    result = Model(target, device="cpu").suite("families", count).as_json()
    cells = {family: {dim: stats["acc@0.05"] for dim, stats in row["by_dim"].items()}
             for family, row in result["families"].items()}
    values = [v for row in cells.values() for v in row.values()]
    return {"name": "families", "count_per_cell": count, "dims": result["dims"], "seed": 12345,
            "mean": round(sum(values) / max(len(values), 1), 4), "worst": result["worst"],
            "by_family": {family: row["all"]["acc@0.05"] for family, row in result["families"].items()},
            "cells": cells, "errors": result["errors"],
            "command": f"linalgformer evaluate {target.name} --suite families --count {count}"}


def read_out_flags(args) -> str:
    """The --answer-views / --view-average / --newton-steps flags of this command, as the card's
    command shows them."""
    flags = (("--answer-views", args.answer_views), ("--view-average", args.view_average), ("--newton-steps", args.newton_steps))
    return "".join(f" {flag} {value}" for flag, value in flags if value is not None)


def set_read_out(target: Path, fields: dict) -> None:
    """Write read-out fields of the model (answer_views, view_average, newton_steps: none of them
    changes a weight) into the bundled config, refused as training would refuse them."""
    config = ckpt.read_config(target)
    config.setdefault("model", {}).update(fields)
    run_config_from_dict(config)  # a value the model cannot take is refused before it is written
    (target / ckpt.CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def last_record(run_dir: Path) -> list[dict]:
    """[the record of the checkpoint that ships]: the final one, or (a run stopped by hand) the
    evaluation at the step of its last checkpoint."""
    records = read_metrics(run_dir)
    final = [r for r in records if r.get("kind") == "final"]
    if final:
        return final[-1:]
    step = json.loads((Path(run_dir) / ckpt.MANIFEST).read_text())["step"]
    return [r for r in records if r.get("kind") == "eval" and r.get("step") == step][-1:]


def store_half(target: Path) -> None:
    """Rewrite the bundled weights as float16 (metadata kept) and the manifest's checksum to match."""
    tensors, meta = ckpt.load_weights(target / ckpt.WEIGHTS)
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, str(target / ckpt.WEIGHTS), metadata=meta)
    manifest = json.loads((target / ckpt.MANIFEST).read_text())
    manifest["files"] = {ckpt.WEIGHTS: ckpt.sha256(target / ckpt.WEIGHTS)}
    (target / ckpt.MANIFEST).write_text(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
