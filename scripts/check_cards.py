"""Does every bundled model still score what its card says? (`python scripts/check_cards.py`)

Each bundled model is loaded and evaluated as its card was measured (`evaluate NAME --count
test_count`, seed test_seed); its accuracy at every tolerance (or, for other families, the card's
primary metric, a mean of cosines, to six significant digits: BLAS sums differ in the last bits)
must equal the card's to the digit. Prints one line per model and exits 1 if any
differs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

import linalgformer as lf
from linalgformer.bundled import BUNDLED_DIR
from linalgformer.tables import evaluation_json


def measured(name: str, card: dict) -> dict:
    model = lf.load(name, device="cpu")
    raw = model.experiment.evaluate(model.module, card.get("test_count", 1000), card.get("test_seed", 12345), model.device)
    return evaluation_json(raw)


def differences(card: dict, now: dict) -> list[str]:
    wanted = card.get("accuracy") or {}
    if isinstance(wanted, dict) and wanted:
        got = now.get("accuracy") or {}
        return [f"{tau}: card {wanted[tau]} now {got.get(tau)}" for tau in wanted if got.get(tau) != wanted[tau]]
    key = card.get("primary_metric", "")
    card_value, now_value = (card.get("metrics") or {}).get(key), now.get(key)
    same = card_value is not None and now_value is not None and math.isclose(card_value, now_value, rel_tol=1e-6)
    return [] if same else [f"{key}: card {card_value} now {now_value}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="bundled names (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.names or sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "card.json").is_file())
    failed = 0
    for name in names:
        card = json.loads((BUNDLED_DIR / name / "card.json").read_text())
        diff = differences(card, measured(name, card))
        failed += bool(diff)
        print(f"{name}: {'as on its card' if not diff else 'DIFFERS: ' + '; '.join(diff)}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
