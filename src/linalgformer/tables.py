"""Evaluation tables: accuracy at each tolerance, per law and per size, as text or JSON."""

from __future__ import annotations

from typing import Any


def evaluation_json(metrics: dict[str, Any]) -> dict[str, Any]:
    """Charton-style: ``accuracy`` maps "0.05".. to fractions; everything else kept as is."""
    out = {k: v for k, v in metrics.items() if not k.startswith("acc@")}
    acc = {k[4:]: v for k, v in metrics.items() if k.startswith("acc@")}
    if acc:
        out["accuracy"] = acc
        for key in ("by_law", "by_dim"):
            if key in out:
                out[key] = {g: evaluation_json(v) for g, v in out[key].items()}
    return out


def evaluation_table(metrics: dict[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    if not any(k.startswith("acc@") for k in flat):
        return method_table(flat)
    columns = ["acc@0.05", "acc@0.02", "acc@0.01", "acc@0.005", "exact", "invalid", "count"]
    header = ["group"] + [c.replace("acc@", "tol ") for c in columns]
    rows = [["all"] + [flat.get(c) for c in columns]]
    for key, label in (("by_law", "law"), ("by_dim", "size")):
        groups = metrics.get(key, {})
        if len(groups) > 1 or key == "by_law":
            rows += [[f"{label} {g}"] + [v.get(c) for c in columns] for g, v in groups.items()]
    return render_table(header, rows)


def render_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    line = lambda vals: "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{100 * value:.1f}%" if 0.0 <= value <= 1.0 else f"{value:.4g}"
    return "" if value is None else str(value)


def by_method(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Split numbers into the model's and each baseline's, where baselines report the model's metrics
    under a prefix (``cos_1`` and ``power6_cos_1``): {"model": {...}, "power6": {...}, ...}."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    base = [k for k in numbers if not any(k != m and k.endswith("_" + m) for m in numbers)]
    rows: dict[str, dict[str, Any]] = {"model": {}}
    for key, value in numbers.items():
        metric = max((m for m in base if key == m or key.endswith("_" + m)), key=len)
        rows.setdefault(key[: -len(metric)].rstrip("_") or "model", {})[metric] = value
    return rows


def method_table(metrics: dict[str, Any]) -> str:
    """One row for the model and one per baseline (see :func:`by_method`); a flat line when there are
    no baselines."""
    rows = by_method(metrics)
    if len(rows) < 2:
        return format_metrics(metrics)
    columns = list(dict.fromkeys(c for r in rows.values() for c in r))
    number = lambda v: "" if v is None else f"{v:.4g}"  # noqa: E731  (not percentages: errors, cosines)
    return render_table(["method"] + columns, [[name] + [number(r.get(c)) for c in columns] for name, r in rows.items()])


def format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in metrics.items() if not isinstance(v, (dict, list)))


def text_table(rows: list[dict[str, Any]], spec: str = ".3f") -> str:
    """Row dicts as a table: one column per key (first-seen order); floats as ``spec``, None as "-"."""
    header = list(dict.fromkeys(key for row in rows for key in row))
    return render_table(header, [[cell(row.get(c), spec) for c in header] for row in rows])


def cell(value: Any, spec: str) -> str:
    if isinstance(value, float):
        return format(value, spec)
    return "-" if value is None else str(value)
