"""``model.value_loss``: token answers, with an auxiliary regression of each answer entry's value
from the decoder state of every token that writes it."""

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.charton import answer_tensors, entry_value_error
from linalgformer.experiments.registry import build_experiment, run_config_from_dict

from tests.helpers import assert_resumes_exactly


def config(problem: str = "matrix_vector", weight: float = 1.0, encoding: str = "P1000", train=None, **problem_keys):
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": problem, "dim": 2, "encoding": encoding, **problem_keys},
        "model": {"positions": "matrix", "width": 32, "heads": 2, "enc_layers": 1, "dec_layers": 1,
                  "max_len": 128, "value_loss": weight},
        "train": {"max_steps": 20, "batch_size": 16, "lr": 1e-3, "warmup_steps": 5, "eval_every": 10,
                  "log_every": 5, "checkpoint_every": 10, "valid_count": 16, "seed": 0, **(train or {})},
    })


def test_answer_entries_name_the_entry_of_every_answer_token_on_a_2x2_example():
    """M^T v of a 2x2 M: two entries, three P1000 tokens each (sign, mantissa, exponent); the header
    positions and the one that predicts <eos> belong to no entry."""
    exp = build_experiment(config())
    model = exp.build_model()
    batch = exp.sample_batch(np.random.default_rng(0), 1)
    tgt_in = batch["tgt_ids"][:, :-1]  # <bos> V2 V1 + m e + m e; position t predicts token t + 1
    entries = model.matrix_positions.answer_entries(tgt_in)[0].tolist()
    assert entries == [-1, -1, 0, 0, 0, 1, 1, 1, -1]
    # the ids of the predicted tokens agree: every token of entry k carries the answer's column k + 1
    ids = model.matrix_positions.target(tgt_in)
    assert [int(c) for c, e in zip(ids.col[0], entries) if e >= 0] == [1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("encoding,tokens", [("P10", 5), ("B1999", 2), ("FP15", 1)])
def test_answer_entries_follow_each_encodings_tokens_per_number(encoding, tokens):
    exp = build_experiment(config("matrix_sum", encoding=encoding))
    model = exp.build_model()
    batch = exp.sample_batch(np.random.default_rng(1), 1)
    entries = model.matrix_positions.answer_entries(batch["tgt_ids"][:, :-1])[0].tolist()
    assert entries == [-1, -1] + [k for k in range(4) for _ in range(tokens)] + [-1]


def test_entry_value_error_is_zero_for_the_right_values_and_d1_otherwise():
    target = torch.tensor([[2.0, -1.0], [4.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    entries = torch.tensor([[-1, 0, 0, 1, 1, -1], [-1, 0, 0, -1, -1, -1]])
    right = target.gather(1, entries.clamp(min=0))
    assert torch.equal(entry_value_error(right, entries, target, mask), torch.zeros(2))
    z = right.clone()
    z[0, 1:3] = 0.0  # entry 0 of example 0 read as 0 at both its tokens: sum |err| 4 over sum |t| 6
    assert torch.allclose(entry_value_error(z, entries, target, mask), torch.tensor([4.0 / 6.0, 0.0]))


def test_the_loss_adds_the_weighted_value_error_to_the_cross_entropy():
    with_loss, without = build_experiment(config(weight=0.5)), build_experiment(config(weight=0.0))
    torch.manual_seed(0)
    model = with_loss.build_model()
    batch = with_loss.sample_batch(np.random.default_rng(2), 8)
    total = with_loss.loss(model, batch)
    tokens = without.loss(model, {k: v for k, v in batch.items() if not k.startswith(("tgt_values", "tgt_mask", "out_shape"))})
    out = model(batch["src_ids"], batch["src_len"], batch["tgt_ids"][:, :-1], entry_values=True)
    z, entries = out.entry_values, out.entries
    expected = tokens + 0.5 * entry_value_error(z, entries, batch["tgt_values"], batch["tgt_mask"]).mean()
    assert torch.allclose(total, expected, atol=1e-6)
    total.backward()
    assert model.entry_value.weight.grad.abs().sum() > 0  # the head is trained through the loss


def test_targets_are_the_answers_in_units_of_the_largest_input_entry_squared():
    exp = build_experiment(config())
    rng = np.random.default_rng(4)
    examples = exp.problem.sample(rng, 3)
    batch = answer_tensors(exp.problem, examples)
    for i, (x, t) in enumerate(zip(examples.inputs, examples.targets)):
        assert np.allclose(batch["tgt_values"][i, : t.size].numpy(), t.ravel() / np.abs(x).max() ** 2, rtol=1e-6)


def test_chunked_mixed_sizes_give_the_padded_batchs_loss():
    def loss(buckets):
        exp = build_experiment(config(train={"length_buckets": buckets}, min_dim=1, max_dim=4))
        torch.manual_seed(0)
        model = exp.build_model()
        batch = exp.sample_batch(np.random.default_rng(5), 32)
        assert len(set(batch["src_len"].tolist())) > 1
        return exp.loss(model, batch).item()
    assert loss(1) == pytest.approx(loss(4), rel=1e-5)


def test_a_run_with_the_value_loss_resumes_exactly(tmp_path):
    assert_resumes_exactly(lambda **train: config(train=train), tmp_path, steps=12, cut=6)


def test_the_value_loss_lowers_the_entry_error_of_a_tiny_model():
    """Eighty steps on 2x2 matrix sums: the auxiliary error falls well below that of the untrained head."""
    exp = build_experiment(config("matrix_sum", weight=1.0))
    torch.manual_seed(0)
    model = exp.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(6)
    test = exp.sample_batch(np.random.default_rng(99), 64)

    def entry_error():
        with torch.no_grad():
            out = model(test["src_ids"], test["src_len"], test["tgt_ids"][:, :-1], entry_values=True)
            z, entries = out.entry_values, out.entries
            return float(entry_value_error(z, entries, test["tgt_values"], test["tgt_mask"]).mean())
    before = entry_error()
    for _ in range(80):
        opt.zero_grad()
        exp.loss(model, exp.sample_batch(rng, 64)).backward()
        opt.step()
    assert entry_error() < 0.8 * before  # 0 for every entry scores 1.0: this needs the input


@pytest.mark.parametrize("model_keys,problem_keys,words", [
    ({"positions": "sinusoidal"}, {}, "positions=matrix"),
    ({"encoder_only": True}, {}, "positions=matrix"),
    ({}, {"encoding": "continuous"}, "continuous answer"),
])
def test_settings_the_value_loss_cannot_serve_are_refused_in_one_sentence(model_keys, problem_keys, words):
    with pytest.raises((UserError, ValueError)) as err:
        cfg = config(**problem_keys)
        cfg.model.__dict__.update(model_keys)
        cfg.model.__post_init__()
        exp = build_experiment(cfg)
        if problem_keys:
            exp.build_model()
    assert words in str(err.value)


def test_a_training_file_is_refused_with_the_value_loss(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("")
    with pytest.raises(UserError, match="train.data_file"):
        build_experiment(config(train={"data_file": str(data)}))


def test_a_negative_weight_is_refused():
    with pytest.raises((UserError, ValueError), match="value_loss"):
        config(weight=-1.0)
