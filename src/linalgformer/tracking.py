"""Metric logging: JSONL always, TensorBoard when installed, a tqdm bar on the console."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from linalgformer.files import append_text, atomic_write_text, check_output, read_bounded

METRICS = "metrics.jsonl"
MAX_METRICS_BYTES = 2**30  # a metrics file is read whole: bounded, and never a FIFO or device


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class MetricLogger:
    """Appends one JSON object per record to ``metrics.jsonl``; mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / METRICS
        if enabled:  # a link or special file planted as metrics.jsonl is refused before training starts
            check_output(self.path, "the metrics file")
        self.writer = _tensorboard_writer(run_dir) if (enabled and tensorboard) else None

    def truncate_after(self, step: int) -> None:
        """Drop records beyond ``step`` (written after the checkpoint a resumed run restarts from).

        ``final`` records go too: the resumed run writes its own when it ends, so a run killed after
        its last checkpoint (or resumed with a larger budget) keeps exactly one, as if uninterrupted.
        """
        if not (self.enabled and self.path.exists()):
            return
        text = read_bounded(self.path, "the metrics file", MAX_METRICS_BYTES).decode(errors="replace")
        kept = [line for line in text.splitlines() if line.strip() and _kept_on_resume(line, step)]
        new = "".join(line + "\n" for line in kept)
        if new != text:  # rewritten atomically: a kill here must not lose the records kept
            atomic_write_text(self.path, new)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_text(self.path, json.dumps(_clean(record), sort_keys=True) + "\n")  # never through a link
        if self.writer is not None:
            kind = record.get("kind", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "kind"):
                    self.writer.add_scalar(f"{kind}/{key}", value, record.get("step", 0))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _kept_on_resume(line: str, step: int) -> bool:
    """Whether a resume from ``step`` keeps this line; a line cut by a kill is never kept."""
    try:
        record = json.loads(line)
        return int(record.get("step", 0)) <= step and record.get("kind") != "final"
    except (ValueError, TypeError, AttributeError, RecursionError):
        return False


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional and slow to import: only when logging
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in read_bounded(path, "the metrics file", MAX_METRICS_BYTES).decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line cut by a kill: skip it
        if isinstance(record, dict):
            records.append(record)
    return records


def progress_bar(total: int, initial: int = 0, *, enabled: bool = True, desc: str = "train"):
    interactive = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step",
                dynamic_ncols=True, leave=True, mininterval=0.2 if interactive else 30.0)
