"""Tied weights (``model.share_embeddings``) are saved once and restored to every name."""

import dataclasses

import torch

from linalgformer.runs import load_run
from linalgformer.training import train_run
from tests.helpers import tiny_config


def test_a_run_with_shared_embeddings_saves_resumes_and_loads(tmp_path):
    config = tiny_config(max_steps=6, eval_every=3, checkpoint_every=3)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, share_embeddings=True))
    train_run(config, tmp_path / "run", progress=False)
    train_run(dataclasses.replace(config, train=dataclasses.replace(config.train, max_steps=9)), tmp_path / "run",
              progress=False)
    _, _, model = load_run(tmp_path / "run", torch.device("cpu"))
    assert model.head.weight is model.src_embed.tokens.weight is model.tgt_embed.tokens.weight
    assert float(model.head.weight.abs().sum()) > 0
