"""Plots from run directories (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from linalgformer.errors import UserError
from linalgformer.tracking import read_metrics


def pyplot():
    try:
        import matplotlib  # optional (the plot extra) and slow to import: only when plotting

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # after use("Agg"): no display needed
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install 'linalgformer[plot]'.") from None
    return plt


def plot_runs(run_dirs: list[Path], out: Path) -> Path:
    """Loss (train records) and the primary metric (eval records) against examples seen."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for run_dir in run_dirs:
        records = read_metrics(run_dir)
        if not records:
            raise UserError(f"{run_dir} has no metrics.jsonl records to plot.")
        train = [r for r in records if r.get("kind") == "train" and r.get("loss") is not None]
        evals = [r for r in records if r.get("kind") == "eval"]
        ax_loss.plot([r["examples"] for r in train], [r["loss"] for r in train], label=Path(run_dir).name)
        key = metric_key(evals)
        if key:
            ax_acc.plot([r["examples"] for r in evals], [r[key] for r in evals], marker=".",
                        label=f"{Path(run_dir).name} ({key})")
    ax_loss.set(xlabel="examples seen", ylabel="training loss", yscale="log", title="loss")
    ax_acc.set(xlabel="examples seen", ylabel="validation metric", title="validation")
    from matplotlib.ticker import EngFormatter  # optional: matplotlib is loaded by pyplot() above

    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 40k, 1.2M: labels that do not run together
    fig.tight_layout()
    return save(fig, out)


def metric_key(evals: list[dict]) -> str | None:
    if not evals:
        return None
    for key in ("acc@0.05", "accuracy", "score"):
        if key in evals[-1]:
            return key
    return next((k for k, v in evals[-1].items() if isinstance(v, float) and k not in ("lr", "elapsed")), None)


def save(fig, out: Path) -> Path:
    """Save ``fig`` at ``out`` (a folder gets training.png inside it, a name without suffix .png);
    the path actually written is returned."""
    out = Path(out)
    out = out / "training.png" if out.is_dir() else out if out.suffix else out.with_suffix(".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    except OSError as err:
        raise UserError(f"cannot write plot {out}: {err.strerror or err}.") from None
    except ValueError:
        raise UserError(f"cannot write plot {out}: matplotlib does not know the format {out.suffix!r} "
                        "(use .png, .pdf or .svg).") from None
    finally:
        pyplot().close(fig)
    return out


def plot_suite(result: dict, out: Path) -> Path:
    """A robustness suite (``suites.SuiteResult.as_json()``) as a heatmap: accuracy at 5% tolerance,
    one row per family, one column per size."""
    families = list(result.get("order") or result["families"])
    dims = [str(d) for d in result["dims"]]
    grid = np.array([[(result["families"][f]["by_dim"].get(d) or {}).get("acc@0.05", np.nan) for d in dims]
                     for f in families], dtype=float)
    title = f"{result['problem']}: % within 5% ({result['count_per_cell']} per cell)"
    return heatmap(grid, families, [f"{d}x{d}" for d in dims], title, out)


def heatmap(values: np.ndarray, rows: list[str], cols: list[str], title: str, out: Path,
            xlabel: str = "", ylabel: str = "") -> Path:
    """Fractions (rows x cols, NaN: none) drawn as percentages, each cell labelled."""
    plt = pyplot()
    grid = np.asarray(values, dtype=float) * 100
    fig, ax = plt.subplots(figsize=(1.8 + 0.75 * len(cols), 1.0 + 0.32 * len(rows)))
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 60 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45 if max(map(len, cols)) > 4 else 0, ha="right"
                  if max(map(len, cols)) > 4 else "center")
    ax.set_yticks(range(len(rows)), rows)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return save(fig, out)
