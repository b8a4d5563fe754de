"""``model.input_units: rows`` with a token input: each row of each operand becomes one encoder
token, the sum of its entries' token embeddings, each gated by its column."""

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict


def config(encoding="P1000", positions="matrix", problem="matrix_sum"):
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": problem, "dim": 2, "encoding": encoding},
        "model": {"positions": positions, "input_units": "rows", "value_features": True, "width": 32, "heads": 2,
                  "enc_layers": 1, "dec_layers": 1, "max_len": 128},
        "train": {"max_steps": 4, "batch_size": 8},
    })


def row_tokens(model, src):
    """The row source embedder's (B, G, W) row tokens, their ids and (B, G) which exist."""
    mask = torch.ones(src.shape, dtype=torch.bool)[:, None, None, :]
    x, row_ids, present = model.source_embedder(src, None, mask)
    return x, row_ids, present[:, 0, 0, :]


@pytest.mark.parametrize("encoding", ["P1000", "FP15"])
def test_one_token_per_row_of_each_operand_and_each_depends_on_its_row_only(encoding):
    exp = build_experiment(config(encoding))
    torch.manual_seed(0)
    model = exp.build_model()
    src = torch.from_numpy(exp.problem.encode(exp.problem.sample(np.random.default_rng(0), 1))[0].ids.astype(np.int64))
    x, row_ids, present = row_tokens(model, src)
    assert x.shape[1] == 4 and bool(present.all())  # [A|B] of 2x2: rows 1, 2 of A, then of B
    assert row_ids.operand[0].tolist() == [1, 1, 2, 2] and row_ids.row[0].tolist() == [1, 2, 1, 2]
    ids = model.matrix_positions.source(src)
    # the first token of entry (2, 2) of B: only B's second row token moves
    where = int(((ids.operand == 2) & (ids.row == 2) & (ids.col == 2)).nonzero()[0, 1])
    changed = src.clone()
    changed[0, where] = src[0, where - 1] if src[0, where - 1] != src[0, where] else src[0, where + 1]
    moved = (row_tokens(model, changed)[0] - x).abs().sum(-1)[0]
    assert moved[3] > 0 and moved[:3].abs().sum() == 0


def test_the_column_of_an_entry_matters_inside_its_row():
    exp = build_experiment(config("FP15"))
    torch.manual_seed(0)
    model = exp.build_model()
    src = torch.from_numpy(exp.problem.encode(exp.problem.sample(np.random.default_rng(1), 1))[0].ids.astype(np.int64))
    ids = model.matrix_positions.source(src)
    first = [int(((ids.operand == 1) & (ids.row == 1) & (ids.col == c)).nonzero()[0, 1]) for c in (1, 2)]
    swapped = src.clone()
    swapped[0, first[0]], swapped[0, first[1]] = src[0, first[1]], src[0, first[0]]
    assert not torch.allclose(row_tokens(model, swapped)[0][0, 0], row_tokens(model, src)[0][0, 0])


def test_a_token_model_with_row_inputs_trains_and_decodes():
    exp = build_experiment(config("FP15", problem="eigenvalues"))
    model = exp.build_model()
    batch = exp.sample_batch(np.random.default_rng(0), 8)
    loss = exp.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.column_gate.weight.grad.abs().sum() > 0
    examples = exp.problem.sample(np.random.default_rng(0), 4)
    assert len(exp.predict(model, exp.problem, examples, torch.device("cpu"))) == 4


def test_rows_without_matrix_positions_are_refused():
    with pytest.raises(UserError, match="input_units=rows needs model.positions=matrix"):
        build_experiment(config(positions="sinusoidal")).build_model()
