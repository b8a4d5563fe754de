import dataclasses
import datetime
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from linalgformer import checkpoint as ckpt
from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment
from linalgformer.runs import load_run
from linalgformer.tracking import read_metrics
from linalgformer.training import end_process_group, train_run, wrap_ddp
from tests.helpers import tiny_config


def train_losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if r["kind"] == "train"]


def test_run_directory_contents(tmp_path):
    final = train_run(tiny_config(), tmp_path / "run", progress=False)
    names = set(os.listdir(tmp_path / "run"))
    assert {"config.json", "model.safetensors", "train_state.pt", "checkpoint.json", "metrics.jsonl"} <= names
    assert final["step"] == 20 and "acc@0.05" in final
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["problem"]["name"] == "transpose" and config["train"]["decay_steps"] == 20
    records = read_metrics(tmp_path / "run")
    assert {"train", "eval", "final"} <= {r["kind"] for r in records}
    assert all(k in records[0] for k in ("step", "examples", "loss", "lr", "examples_per_s"))


def test_resume_equals_uninterrupted(tmp_path):
    train_run(tiny_config(max_steps=20), tmp_path / "whole", progress=False)
    train_run(tiny_config(max_steps=10, decay_steps=20), tmp_path / "split", progress=False)
    train_run(tiny_config(max_steps=20, decay_steps=20), tmp_path / "split", progress=False)
    assert train_losses(tmp_path / "whole") == train_losses(tmp_path / "split")
    a = load_file(str(tmp_path / "whole" / ckpt.WEIGHTS))
    b = load_file(str(tmp_path / "split" / ckpt.WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    finals = [r["step"] for r in read_metrics(tmp_path / "split") if r["kind"] == "final"]
    assert finals == [20]  # the step-10 final record went when the run went on


def test_a_run_from_before_length_buckets_resumes_as_it_started(tmp_path):
    """A config.json without train.length_buckets (written before it existed) resumes unchunked,
    the way it was trained: the same losses and weights as an uninterrupted unchunked run."""
    def mixed(**train):
        config = tiny_config(**train)
        return dataclasses.replace(config, problem=dataclasses.replace(config.problem, min_dim=2, max_dim=4, dim=4))

    train_run(mixed(max_steps=12, length_buckets=1), tmp_path / "whole", progress=False)
    train_run(mixed(max_steps=6, decay_steps=12, length_buckets=1), tmp_path / "old", progress=False)
    config_file = tmp_path / "old" / ckpt.CONFIG
    old = json.loads(config_file.read_text())
    del old["train"]["length_buckets"]
    config_file.write_text(json.dumps(old))
    train_run(mixed(max_steps=12, decay_steps=12), tmp_path / "old", progress=False)  # today's default: 4
    assert train_losses(tmp_path / "whole") == train_losses(tmp_path / "old")
    assert json.loads(config_file.read_text())["train"]["length_buckets"] == 1


def test_resume_between_two_log_records_logs_the_same_means(tmp_path):
    """A run stopped at step 7 (a time limit can stop it anywhere) and resumed logs, at step 10, the
    mean loss of steps 6-10, as the uninterrupted run does: the pending window is checkpointed."""
    train_run(tiny_config(max_steps=15), tmp_path / "whole", progress=False)
    train_run(tiny_config(max_steps=7, decay_steps=15), tmp_path / "split", progress=False)
    train_run(tiny_config(max_steps=15, decay_steps=15), tmp_path / "split", progress=False)
    assert [s for s, _ in train_losses(tmp_path / "whole")] == [5, 10, 15]
    assert train_losses(tmp_path / "whole") == train_losses(tmp_path / "split")


def test_rerunning_a_finished_run_keeps_one_final_record(tmp_path):
    train_run(tiny_config(max_steps=6), tmp_path / "run", progress=False)
    before = read_metrics(tmp_path / "run")
    train_run(tiny_config(max_steps=6), tmp_path / "run", progress=False)
    after = read_metrics(tmp_path / "run")
    def strip(records):
        return [{k: v for k, v in r.items() if "per_s" not in k and k != "elapsed"} for r in records]
    assert strip(after) == strip(before) and [r["kind"] for r in after].count("final") == 1


def test_data_stream_independent_of_workers(tmp_path):
    train_run(tiny_config(max_steps=10, workers=2), tmp_path / "w2", progress=False)
    train_run(tiny_config(max_steps=10, workers=0), tmp_path / "w0", progress=False)
    assert train_losses(tmp_path / "w2") == train_losses(tmp_path / "w0")


def test_changed_model_is_refused_and_run_untouched(tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(max_steps=10), run, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    changed = tiny_config(max_steps=10)
    changed.model.width = 64
    with pytest.raises(UserError, match="different model"):
        train_run(changed, run, progress=False)
    changed = tiny_config(max_steps=10, lr=5e-3)
    with pytest.raises(UserError, match="train.lr"):
        train_run(changed, run, progress=False)
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert before == after


def test_corrupt_checkpoint_detected(tmp_path):
    run = tmp_path / "run"
    train_run(tiny_config(max_steps=10), run, progress=False)
    data = bytearray((run / ckpt.WEIGHTS).read_bytes())
    data[-5] ^= 0xFF
    (run / ckpt.WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupt"):
        train_run(tiny_config(max_steps=20), run, progress=False)
    with pytest.raises(UserError, match="corrupt"):
        load_run(run)


def test_nan_loss_skips_step_without_touching_weights(tmp_path, monkeypatch):
    config = tiny_config(max_steps=4, eval_every=100, checkpoint_every=100, log_every=1, warmup_steps=0)
    experiment = build_experiment(config)
    real_loss = type(experiment).loss
    calls = {"n": 0}

    def flaky(self, model, batch):
        calls["n"] += 1
        value = real_loss(self, model, batch)
        return value * float("nan") if calls["n"] == 2 else value

    monkeypatch.setattr(type(experiment), "loss", flaky)
    with pytest.warns(UserWarning, match="non-finite"):
        final = train_run(config, tmp_path / "run", progress=False)
    assert final["step"] == 4
    state = ckpt.load_train_state(tmp_path / "run")
    assert state["skipped"] == 1
    weights = load_file(str(tmp_path / "run" / ckpt.WEIGHTS))
    assert all(torch.isfinite(w).all() for w in weights.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, mixed):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a short timeout: processes whose collectives pair up wrongly fail within a minute, not hang
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    experiment, batch = _model_and_batch(mixed)
    torch.manual_seed(0)
    model = wrap_ddp(experiment.build_model(), torch.device("cpu"))  # as the trainer wraps it
    experiment.loss(model, _half(batch, rank)).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.module.named_parameters()}, os.path.join(out_dir, "ddp.pt"))
    end_process_group()


def _half(batch, rank):
    return {k: v[rank * 8:(rank + 1) * 8] for k, v in batch.items()}


def _model_and_batch(mixed=False):
    config = tiny_config()
    if not mixed:
        experiment = build_experiment(config)
        return experiment, experiment.sample_batch(np.random.default_rng(7), 16)
    # sizes 2..4, rows arranged so that process 0's half has one size (one forward, no chunks) and
    # process 1's half all sizes (several chunks, several forwards): the processes must not deadlock
    problem = dataclasses.replace(config.problem, min_dim=2, max_dim=4, dim=4)
    experiment = build_experiment(dataclasses.replace(config, problem=problem))
    pool = experiment.sample_batch(np.random.default_rng(7), 64)
    lengths = pool["src_len"].numpy()
    same = np.flatnonzero(lengths == lengths.max())[:8]
    mixed_rows = np.concatenate([np.flatnonzero(lengths == v)[:3] for v in np.unique(lengths)])[:8]
    rows = torch.from_numpy(np.concatenate([same, mixed_rows]))
    return experiment, {k: v[rows] for k, v in pool.items()}


@pytest.mark.parametrize("mixed", [False, True], ids=["one-size", "mixed-sizes-chunked"])
def test_ddp_gloo_gradients_match_single_process(tmp_path, mixed):
    """DDP's gradient is the mean of each process's gradient on its half of the batch."""
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), mixed), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    experiment, batch = _model_and_batch(mixed)
    assert (len(set(batch["src_len"][8:].tolist())) > 1) == mixed
    assert len(set(batch["src_len"][:8].tolist())) == 1
    grads = []
    for rank in range(2):
        torch.manual_seed(0)
        model = experiment.build_model()
        experiment.loss(model, _half(batch, rank)).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(ddp[name], (grad + grads[1][name]) / 2, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_learns_3x3_transpose(tmp_path):
    """The demo preset (1+1 layers x 128) learns 3x3 transpose within 1,000 steps (64,000 examples)."""
    from linalgformer.reproduce.presets import load_preset

    config, _ = load_preset("demo", overrides=["train.max_steps=1000", "train.eval_every=500",
                                               "train.valid_count=200", "train.max_minutes=0",
                                               "train.checkpoint_every=1000"])
    final = train_run(config, tmp_path / "run", progress=False)
    assert final["acc@0.05"] >= 0.95


def test_weight_decay_leaves_biases_and_norms_out():
    from linalgformer.config import TrainConfig
    from linalgformer.training import build_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimizer, _ = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.1))
    decayed = [p for group in optimizer.param_groups if group["weight_decay"] for p in group["params"]]
    assert len(decayed) == 1 and decayed[0] is model[0].weight
    optimizer, _ = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.0))
    assert len(optimizer.param_groups) == 1  # no decay: one group, as before
