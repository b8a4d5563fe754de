"""Tiny configs shared by the training tests."""

from linalgformer.experiments.registry import run_config_from_dict


def tiny_config(**train):
    base = {"max_steps": 20, "batch_size": 16, "lr": 1e-3, "warmup_steps": 5, "eval_every": 10,
            "log_every": 5, "checkpoint_every": 10, "valid_count": 16, "seed": 0}
    base.update(train)
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": "transpose", "dim": 3, "encoding": "P1000"},
        "model": {"enc_layers": 1, "dec_layers": 1, "width": 32, "heads": 2, "max_len": 64},
        "train": base,
    })
