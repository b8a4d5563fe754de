"""The Charton model reads out only the tokens an answer can contain."""

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.experiments.charton import answer_token_ids
from linalgformer.problems.charton import PROBLEMS

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"enc_layers": 1, "dec_layers": 1, "width": 16, "heads": 2}


def experiment(name, **problem):
    encodings = {"input_encoding": "FP15", "output_encoding": "P1000"} if name != "cotraining" else {}
    return build_experiment(run_config_from_dict({
        "family": "charton", "problem": {"name": name, "dim": 3, **encodings, **problem}, "model": TINY}))


@pytest.mark.parametrize("name", PROBLEMS)  # PROBLEMS ends with cotraining
def test_every_target_token_is_an_answer_token(name):
    exp = experiment(name)
    batch = exp.sample_batch(np.random.default_rng(0), 32)
    allowed = set(answer_token_ids(exp.problem))
    assert set(batch["tgt_ids"].unique().tolist()) <= allowed
    loss = exp.loss(exp.build_model(), batch)
    assert torch.isfinite(loss)


def test_fp15_to_p1000_reads_out_a_small_fraction_of_the_vocabulary():
    exp = experiment("eigenvalues")
    model = exp.build_model()
    assert len(model.output_ids) < len(exp.vocab) / 20


def test_a_target_with_an_input_only_token_is_refused():
    exp = experiment("transpose")
    batch = exp.sample_batch(np.random.default_rng(0), 4)
    fp15_only = next(i for i in range(len(exp.vocab)) if i not in set(answer_token_ids(exp.problem)))
    batch["tgt_ids"][0, 3] = fp15_only
    with pytest.raises(UserError):
        exp.loss(exp.build_model(), batch)
