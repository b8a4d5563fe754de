"""Markdown tables of the bundled models' robustness suites, read from their cards (written by
``scripts/bundle_model.py``, which runs ``linalgformer evaluate NAME --suite families``).

    python scripts/suite_tables.py                 # every bundled model with a suite on its card
    python scripts/suite_tables.py eigenvalues-5x5 # one
    python scripts/suite_tables.py --summary       # one row per model (docs/RESULTS.md 8.2)
"""

from __future__ import annotations

import sys

from linalgformer.bundled import bundled_models, model_card


def table(name: str, card: dict) -> str:
    suite = card["suite"]
    dims = [str(d) for d in suite["dims"]]
    lines = [f"**{name}** ({card.get('description', '')}): % within 5%, {suite['count_per_cell']} matrices per "
             f"cell, mean over cells {100 * suite['mean']:.1f}%; views {views(card)}; `{suite['command']}`", "",
             "| family | " + " | ".join(f"{d}x{d}" for d in dims) + " | all |",
             "|---|" + "---:|" * (len(dims) + 1)]
    for family, cells in suite["cells"].items():
        row = [f"{100 * cells[d]:.1f}" if cells.get(d) is not None else "-" for d in dims]
        lines.append(f"| {family} | " + " | ".join(row) + f" | {100 * suite['by_family'][family]:.1f} |")
    for family, why in suite.get("errors", {}).items():
        lines.append(f"| {family} | n/a: {why} |" + " |" * len(dims))
    return "\n".join(lines)


def views(card: dict) -> str:
    """How the card's model answers: one view, or K views and how they combine."""
    k = card.get("answer_views") or 1
    return f"{k} {card.get('view_average', 'mean')}" if k > 1 else "1"


def summary() -> str:
    """One row per bundled model with a suite: sizes, its card's accuracy, the suite's mean and worst
    cell, the minutes of its last run and the views it answers with (model.answer_views)."""
    rows = ["| model | sizes | test set, % within 5% | suite mean | worst cell | minutes (its run) | views |",
            "|---|---|---:|---:|---|---:|---|"]
    for name, path in bundled_models().items():
        card = model_card(path)
        suite = card.get("suite")
        if not suite:
            continue
        worst = suite["worst"]
        rows.append(f"| {name} | {suite['dims'][0]}..{suite['dims'][-1]} | {100 * card['accuracy']['0.05']:.1f} | "
                    f"{100 * suite['mean']:.1f} | {worst['family']} {worst['dim']}x{worst['dim']}: "
                    f"{100 * worst['acc@0.05']:.0f}% | {round((card.get('train_seconds') or 0) / 60, 1)} | "
                    f"{views(card)} |")
    return "\n".join(rows)


def main() -> None:
    if sys.argv[1:] == ["--summary"]:
        print(summary())
        return
    wanted = sys.argv[1:]
    for name, path in bundled_models().items():
        card = model_card(path)
        if (wanted and name not in wanted) or "suite" not in card:
            continue
        print(table(name, card) + "\n")


if __name__ == "__main__":
    main()
