"""Training throughput on a busy machine: 0, 1 and 2 busy processes beside the trainer, under the
old thread policy (torch's default threads, OpenMP's default active wait) and the new one (threads
capped at the free cores, ``runtime.auto_threads``; ``OMP_WAIT_POLICY=PASSIVE`` as ``make demo``
sets it). Issue 25.11.

Each measurement is a fresh child process (OpenMP reads its wait policy when torch loads) timing
``--steps`` ``Trainer.step`` calls of the demo model after two warm-up steps; the busy processes are
pure-Python spin loops started before it and stopped after. Printed: seconds per step, and each
time as a ratio to the same policy alone (the slowdown the load causes) and old/new under the same
load. A couple of minutes in all::

    python benchmarks/busy_machine.py [--steps 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import sys, time
import numpy as np
from linalgformer.config import load_yaml
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.training import build_trainer, setup_runtime
import tempfile, torch
steps, threads = int(sys.argv[1]), int(sys.argv[2])
data = load_yaml("configs/demo.yaml")
data.pop("title", None); data.pop("reproduce", None)
data["train"]["threads"] = threads
config = run_config_from_dict(data)
rt = setup_runtime(config.train)
experiment = build_experiment(config)
trainer = build_trainer(config, tempfile.mkdtemp(), rt, experiment=experiment, progress=False, logging=False)
batches = [experiment.sample_batch(np.random.default_rng([0, s]), config.train.batch_size) for s in range(steps + 2)]
for b in batches[:2]:
    trainer.step(b)
start = time.perf_counter()
for b in batches[2:]:
    trainer.step(b)
print(json.dumps({"s_per_step": (time.perf_counter() - start) / steps, "threads": torch.get_num_threads()}))
""".replace("import sys, time", "import json, sys, time")

POLICIES = {"old": {"threads": os.cpu_count() or 1, "env": {}},  # torch's default: one thread per core
            "new": {"threads": 0, "env": {"OMP_WAIT_POLICY": "PASSIVE"}}}


def measure(policy: str, busy: int, steps: int) -> dict:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0.0)  # the spinners are running (the load average follows later)
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        env.update(POLICIES[policy]["env"])
        out = subprocess.run([sys.executable, "-c", CHILD, str(steps), str(POLICIES[policy]["threads"])],
                             env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = {}
    for busy in (0, 1, 2):
        for policy in POLICIES:
            rows[(policy, busy)] = measure(policy, busy, args.steps)
    print(f"{'busy':>4} {'policy':>6} {'threads':>7} {'s/step':>8} {'x alone':>8} {'old/new':>8}")
    for busy in (0, 1, 2):
        for policy in POLICIES:
            row = rows[(policy, busy)]
            alone = row["s_per_step"] / rows[(policy, 0)]["s_per_step"]
            gain = rows[("old", busy)]["s_per_step"] / rows[("new", busy)]["s_per_step"]
            print(f"{busy:>4} {policy:>6} {row['threads']:>7} {row['s_per_step']:>8.3f} {alone:>8.2f} "
                  f"{gain if policy == 'new' else float('nan'):>8.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([dict(policy=p, busy=b, **r) for (p, b), r in rows.items()], handle, indent=1)


if __name__ == "__main__":
    main()
