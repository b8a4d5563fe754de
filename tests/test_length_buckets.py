"""Mixed sizes: training batches run as chunks of similar length, evaluation decodes sorted batches.
Both must give what the padded batch gives (loss, gradients, predictions), only cheaper."""


import numpy as np
import pytest
import torch

from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.experiments.charton import length_chunks


def mixed_experiment(buckets: int, problem: str = "eigenvalues"):
    config = run_config_from_dict({
        "family": "charton",
        "problem": {"name": problem, "min_dim": 2, "max_dim": 5, "dim": 5, "encoding": "P1000"},
        "model": {"enc_layers": 1, "dec_layers": 1, "width": 32, "heads": 2, "max_len": 128},
        "train": {"length_buckets": buckets},
    })
    return build_experiment(config)


def loss_and_grads(experiment, batch):
    torch.manual_seed(0)
    model = experiment.build_model()
    with torch.no_grad():  # weights large enough that every token position matters
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, (2.0 / p.shape[1]) ** 0.5)
    loss = experiment.loss(model, batch)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("problem", ["eigenvalues", "transpose"])
def test_chunked_loss_and_gradients_equal_the_padded_batch(problem):
    padded, chunked = mixed_experiment(1, problem), mixed_experiment(4, problem)
    batch = padded.sample_batch(np.random.default_rng(7), 32)
    assert len(set(batch["src_len"].tolist())) > 1  # sizes 2..5: lengths vary
    loss1, grads1 = loss_and_grads(padded, batch)
    loss4, grads4 = loss_and_grads(chunked, batch)
    assert loss4 == pytest.approx(loss1, rel=1e-5)
    assert grads1.keys() == grads4.keys()
    for name in grads1:
        torch.testing.assert_close(grads4[name], grads1[name], rtol=1e-4, atol=1e-6, msg=name)


def test_chunks_cover_the_batch_sorted_by_length():
    src_len = torch.tensor([9, 3, 9, 5, 3, 7, 5, 9])
    tgt_len = torch.tensor([4, 2, 5, 3, 2, 4, 3, 4])
    chunks = length_chunks(src_len, tgt_len, 4)
    assert sorted(torch.cat(chunks).tolist()) == list(range(8))
    assert [int(src_len[c].max()) for c in chunks] == [3, 5, 9, 9]  # the short ones together, not padded to 9
    assert length_chunks(src_len, tgt_len, 1) is None
    same = torch.full((8,), 6)
    assert length_chunks(same, same, 4) is None  # nothing to save: one batch


def test_sorted_evaluation_returns_predictions_in_the_examples_order(monkeypatch):
    """Decoding sorts by length, in several batches; each prediction must come back to its own
    example: shuffling the examples shuffles the predictions the same way."""
    from linalgformer.experiments import charton
    from linalgformer.problems.charton.matrix_problem import subset

    monkeypatch.setattr(charton, "EVAL_BATCH", 7)  # 40 examples: six batches of mixed sizes
    experiment = mixed_experiment(4)
    torch.manual_seed(1)
    model = experiment.build_model()
    with torch.no_grad():  # weights large enough that the answer depends on the question
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, (2.0 / p.shape[1]) ** 0.5)
    model.eval()
    examples = experiment.problem.sample(np.random.default_rng(3), 40)
    cpu = torch.device("cpu")
    preds = experiment.predict(model, experiment.problem, examples, cpu)
    assert len(set(map(tuple, preds))) > 20 and len(set(examples.dims)) > 1
    perm = np.random.default_rng(0).permutation(len(examples))
    shuffled = experiment.predict(model, experiment.problem, subset(examples, perm), cpu)
    assert shuffled == [preds[i] for i in perm]
