"""Models shipped inside the package (``linalgformer/bundled/NAME/``): usable right after install."""

from __future__ import annotations

import json
from pathlib import Path

from linalgformer.errors import UserError

BUNDLED_DIR = Path(__file__).parent / "bundled"


def bundled_models() -> dict[str, Path]:
    if not BUNDLED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUNDLED_DIR.iterdir()) if (p / "config.json").is_file()}


def resolve_model(name_or_path: Path | str) -> Path:
    """A run directory: the path itself if it exists, else a bundled model of that name."""
    path = Path(name_or_path)
    if path.exists():
        return path
    models = bundled_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    known = ", ".join(models) or "none"
    raise UserError(f"{name_or_path} is neither a run directory nor a bundled model (bundled: {known}).")


def model_card(path: Path) -> dict:
    card = path / "card.json"
    try:
        return json.loads(card.read_text()) if card.is_file() else {}
    except (OSError, ValueError):
        return {}
