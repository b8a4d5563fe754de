"""Whether a finished run reached its ``train.target_metric``: says so plainly, exit 1 if it did not.

    python scripts/demo_reached.py RUN_DIR     (the Makefile's demo target runs it after training)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run_dir: Path) -> int:
    config = json.loads((run_dir / "config.json").read_text())
    target = float(config["train"].get("target_metric") or 0.0)
    finals = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if line.strip() and json.loads(line).get("kind") == "final"]
    if not finals:
        print(f"the demo run in {run_dir} did not finish: no final evaluation.", file=sys.stderr)
        return 1
    final = finals[-1]
    reached = float(final.get("acc@0.05", 0.0))
    if reached < target:
        print(f"the demo did NOT reach its target: {reached:.1%} accuracy (5% tolerance) after "
              f"{final['step']} steps, short of {target:.0%}.", file=sys.stderr)
        return 1
    print(f"the demo reached its target: {reached:.1%} accuracy (5% tolerance) after {final['step']} steps.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
