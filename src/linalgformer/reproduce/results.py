"""One table from many ``reproduce`` results: ``linalgformer results runs/reproduce/*.result.json``.

Each ``reproduce`` writes ``NAME[-SCALE].result.json`` beside its runs; for single-run Charton presets
this gathers, per preset: the problem and size, the encodings and model, the examples seen and the
training time (from the run's ``metrics.jsonl``), accuracy at 5% and 1% on the preset's test set,
and where it ran. Markdown (for docs/RESULTS.md) or plain text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linalgformer.errors import UserError
from linalgformer.files import read_json
from linalgformer.tables import render_table
from linalgformer.tracking import read_metrics

COLUMNS = ["preset", "problem", "size", "encodings", "model", "examples", "train s", "acc@5%", "acc@1%", "device"]


def load_result(path: Path) -> dict[str, Any]:
    try:
        result = read_json(Path(path), "result file")  # bounded; nesting too deep is one sentence
    except OSError as err:
        raise UserError(f"cannot read result {path}: {err.strerror or err}.") from None
    if not isinstance(result, dict):
        raise UserError(f"{path} is not the result of `linalgformer reproduce` (not a JSON object).")
    return result


def checked_row(path: Path) -> list[Any] | None:
    """The table row of the result in ``path``; UserError when its fields have the wrong shape."""
    result = load_result(path)  # its own sentence when unreadable
    try:
        return result_row(result)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise UserError(f"{path} is not the result of `linalgformer reproduce` (its fields have the wrong "
                        "shape).") from None


def result_row(result: dict[str, Any]) -> list[Any] | None:
    """The table row of one Charton single-run result (None for grids and other families)."""
    run_dir, metrics = Path(result.get("run_dir", "")), result.get("metrics") or {}
    if result.get("family") != "charton" or "acc@0.05" not in metrics or not (run_dir / "config.json").is_file():
        return None
    config = read_json(run_dir / "config.json", "run config")
    problem, model = config["problem"], config["model"]
    size = (f"{problem['dim']}x{problem['dim']}" if not (problem.get("min_dim") and problem.get("max_dim"))
            else f"{problem['min_dim']}..{problem['max_dim']}")
    coders = f"{problem.get('input_encoding') or problem['encoding']} -> {problem.get('output_encoding') or problem['encoding']}"
    records = [r for r in read_metrics(run_dir) if "elapsed" in r]
    last = records[-1] if records else {}
    where = result.get("machine") or {}
    device = f"{where.get('device', '?')}, {where.get('torch_threads', '?')} thr"
    scale = result.get("scale") or ("quick" if result.get("quick") else "paper")
    name = result.get("name", "?") + ("" if scale == "paper" else " --quick" if scale == "quick" else f" --scale {scale}")
    return [name, problem["name"], size, coders, f"{model['enc_layers']}+{model['dec_layers']} x {model['width']}"
            + {"sinusoidal": ", sin. pos.", "matrix": ", matrix pos."}.get(model.get("positions"), ""),
            f"{last.get('examples', 0):,}", f"{last.get('elapsed', float('nan')):.0f}",
            f"{100 * metrics['acc@0.05']:.1f}%", f"{100 * metrics['acc@0.01']:.1f}%", device]


def results_table(paths: list[Path], markdown: bool = True) -> str:
    rows = [row for row in (checked_row(p) for p in paths) if row is not None]
    if not rows:
        raise UserError("none of these files is the result of a single-run Charton preset.")
    if not markdown:
        return render_table(COLUMNS, rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
