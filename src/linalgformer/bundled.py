"""Models shipped inside the package (``linalgformer/bundled/NAME/``): usable right after install.

A bundled model is named by its directory (``eigenvalues-3x3``) or, for ``predict``, by its problem
(``eigenvalues``): the bundled model of that problem whose trained size fits the question's matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from linalgformer.errors import UserError

BUNDLED_DIR = Path(__file__).parent / "bundled"


def bundled_models() -> dict[str, Path]:
    if not BUNDLED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_DIR.iterdir()) if (p / "config.json").is_file()}


def models_for_problem(problem: str) -> dict[str, Path]:
    """The bundled models whose card names ``problem`` (either spelling: matrix_sum or matrix-sum)."""
    wanted = problem.replace("-", "_")
    return {name: path for name, path in bundled_models().items()
            if str(model_card(path).get("problem", "")).replace("-", "_") == wanted}


def trained_dims(path: Path) -> tuple[int, int]:
    """(smallest, largest) matrix size a bundled Charton model was trained on, from its config."""
    problem = json.loads((path / "config.json").read_text()).get("problem", {})
    dim = problem.get("dim") or 0
    return problem.get("min_dim") or dim, problem.get("max_dim") or dim


def trained_on_rows(rows: int) -> Callable[[Path], bool]:
    """Whether a bundled model was trained on matrices of ``rows`` rows (models with no size: yes)."""
    def fits(path: Path) -> bool:
        low, high = trained_dims(path)
        return not high or low <= rows <= high
    return fits


def resolve_model(name_or_path: Path | str, fits: Callable[[Path], bool] | None = None) -> Path:
    """A run directory: the path itself if it exists, else the bundled model of that name, else the
    bundled model of that problem for which ``fits(path)`` holds (the only one, if no ``fits``;
    if several fit, the most accurate over the matrix families, :func:`card_rank`)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    models = bundled_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    candidates = models_for_problem(str(name_or_path))
    if candidates:
        chosen = sorted((p for p in candidates.values() if fits is None or fits(p)), key=card_rank)
        if len(chosen) == 1 or (chosen and fits is not None):
            return chosen[0]
        raise UserError(f"no bundled {name_or_path} model fits this question (bundled for "
                        f"{name_or_path}: {', '.join(candidates)}); name one of them.")
    known = ", ".join(models) or "none"
    raise UserError(f"{name_or_path} does not exist: it is neither a run directory, a bundled model nor "
                    f"the problem of one (bundled: {known}).")


def card_rank(path: Path) -> tuple[float, float]:
    """Sort key, best first: the mean accuracy at 5% over the card's robustness suite (the matrix
    families at every trained size: what a user's matrix is likely to be), then on the paper's
    test set. A card without a suite counts as 0 over the families."""
    suite = model_card(path).get("suite") or {}
    mean = suite.get("mean") if isinstance(suite, dict) else None
    return -(float(mean) if isinstance(mean, (int, float)) else 0.0), -card_accuracy(path)


def card_accuracy(path: Path) -> float:
    """A bundled model's accuracy at 5% on its card (0 when the card says none)."""
    value = (model_card(path).get("accuracy") or {}).get("0.05")
    return float(value) if isinstance(value, (int, float)) else 0.0


def model_card(path: Path) -> dict:
    card = path / "card.json"
    try:
        return json.loads(card.read_text()) if card.is_file() else {}
    except (OSError, ValueError):
        return {}
