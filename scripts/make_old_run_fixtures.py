"""Write the tiny run directories of tests/fixtures/old_runs/ (kept as the code of 2026-12-06 wrote them).

Each fixture is a run stopped at step 6 of 12 (``decay_steps`` 12), plus ``expected.json``: the train
losses of the same run trained to step 12 without a stop. tests/test_old_runs.py resumes a copy of
each with today's code and asserts the same losses. Re-run only to add a fixture, never to refresh
one (that would defeat its purpose).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from linalgformer.experiments.registry import run_config_from_dict
from linalgformer.tracking import read_metrics
from linalgformer.training import train_run

TRAIN = {"max_steps": 12, "decay_steps": 12, "batch_size": 8, "lr": 1e-3, "warmup_steps": 3, "eval_every": 6,
         "log_every": 2, "checkpoint_every": 6, "valid_count": 8, "seed": 0, "threads": 1}
FIXTURES = {
    "tokens": {"family": "charton", "problem": {"name": "transpose", "dim": 2, "encoding": "P10"},
               "model": {"enc_layers": 1, "dec_layers": 1, "width": 8, "heads": 2, "max_len": 40}},
    "continuous": {"family": "charton",
                   "problem": {"name": "matrix_sum", "dim": 2, "encoding": "P10", "input_encoding": "continuous",
                               "output_encoding": "continuous"},
                   "model": {"enc_layers": 1, "dec_layers": 1, "width": 8, "heads": 2, "max_len": 40,
                             "positions": "matrix", "position_bias": True, "input_units": "rows"}},
    "value-loss": {"family": "charton", "problem": {"name": "transpose", "dim": 2, "encoding": "P10"},
                   "model": {"enc_layers": 1, "dec_layers": 1, "width": 8, "heads": 2, "max_len": 40,
                             "positions": "matrix", "value_features": True, "value_loss": 0.5, "ffn": "swiglu"}},
}


def config(spec: dict, steps: int):
    return run_config_from_dict(dict(spec, train=dict(TRAIN, max_steps=steps)))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    for name, spec in FIXTURES.items():
        with tempfile.TemporaryDirectory() as tmp:
            whole = Path(tmp) / "whole"
            train_run(config(spec, 12), whole, progress=False)
            losses = [[r["step"], r["loss"]] for r in read_metrics(whole) if r["kind"] == "train"]
            target = out / name
            shutil.rmtree(target, ignore_errors=True)
            train_run(config(spec, 6), target, progress=False)
            (target / ".lock").unlink(missing_ok=True)
            (target / "expected.json").write_text(json.dumps({"train_losses": losses}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("tests/fixtures/old_runs"))
