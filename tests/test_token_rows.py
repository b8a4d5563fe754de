"""``model.input_units: rows`` with a token input: each row of each operand becomes one encoder
token, the sum of its entries' token embeddings, each gated by its column."""

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict


def config(encoding="P1000", positions="matrix", problem="matrix_sum", units="rows", **model):
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": problem, "dim": 2, "encoding": encoding},
        "model": {"positions": positions, "input_units": units, "value_features": True, "width": 32, "heads": 2,
                  "enc_layers": 1, "dec_layers": 1, "max_len": 128, **model},
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


@pytest.mark.parametrize("units", ["rows", "lines"])
def test_rows_without_matrix_positions_are_refused(units):
    with pytest.raises(UserError, match=f"input_units={units} needs model.positions=matrix"):
        build_experiment(config(positions="sinusoidal", units=units)).build_model()


@pytest.mark.parametrize("encoding", ["P1000", "continuous"])
def test_lines_add_a_token_per_column_that_depends_on_its_column_only(encoding):
    """``model.input_units: lines``: the rows of each operand, then its columns (ids: no row, the
    column); an entry moves its row's token and its column's token, nothing else."""
    exp = build_experiment(config(encoding, units="lines"))
    torch.manual_seed(0)
    model = exp.build_model()
    examples = exp.problem.sample(np.random.default_rng(0), 1)
    src_seq = exp.problem.encode(examples)[0]
    src = torch.from_numpy(src_seq.ids.astype(np.int64))
    values = None if src_seq.values is None else torch.from_numpy(src_seq.values)

    def tokens(values):
        mask = torch.ones(src.shape, dtype=torch.bool)[:, None, None, :]
        x, ids, present = model.source_embedder(src, values, mask)
        return x, ids, present[:, 0, 0, :]

    x, ids, present = tokens(values)
    assert x.shape[1] == 8 and bool(present.all())  # [A|B] of 2x2: rows of A, of B, then columns of A, of B
    assert ids.operand[0].tolist() == [1, 1, 2, 2] * 2
    assert ids.row[0].tolist() == [1, 2, 1, 2, 0, 0, 0, 0] and ids.col[0].tolist() == [0, 0, 0, 0, 1, 2, 1, 2]
    assert model.memory_ids(src).col[0].tolist() == ids.col[0].tolist()
    if values is None:
        return
    where = int(((model.matrix_positions.source(src).operand == 2) & (model.matrix_positions.source(src).row == 2)
                 & (model.matrix_positions.source(src).col == 1)).nonzero()[0, 1])
    changed = values.clone()
    changed[0, where] += 1.0
    moved = (tokens(changed)[0] - x).abs().sum(-1)[0]
    assert moved.nonzero().flatten().tolist() == [3, 6]  # B's row 2 and B's column 1


def test_a_model_with_lines_trains():
    exp = build_experiment(config("continuous", problem="singularvalues", units="lines"))
    model = exp.build_model()
    loss = exp.loss(model, exp.sample_batch(np.random.default_rng(0), 8))
    loss.backward()
    assert torch.isfinite(loss) and model.row_gate.weight.grad.abs().sum() > 0


def attention_config(kinds, layers=2):
    return config("continuous", problem="singularvalues", enc_layers=layers, encoder_attention=kinds,
                  position_bias=True)


def test_linear_attention_in_the_encoder_trains_and_is_softmax_elsewhere():
    """``model.encoder_attention``: linear attention writes sum_k (q_i . k_k) v_k over the row
    tokens (row i of A A^T, with the right projections); the padding mask and structural bias still hold."""
    exp = build_experiment(attention_config("linear,softmax"))
    torch.manual_seed(0)
    model = exp.build_model()
    assert [layer.attn.kind for layer in model.encoder] == ["linear", "softmax"]
    batch = exp.sample_batch(np.random.default_rng(0), 8)
    loss = exp.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.encoder[0].attn.q_proj.weight.grad.abs().sum() > 0
    same = build_experiment(attention_config("softmax"))
    torch.manual_seed(0)
    assert sorted(same.build_model().state_dict()) == sorted(model.state_dict())  # no new weights


def test_linear_attention_ignores_padded_keys():
    from linalgformer.models.charton import Attention
    attn = Attention(8, 2, 0.0, "linear")
    x = torch.randn(1, 3, 8)
    mask = torch.zeros(1, 1, 1, 3)
    mask[..., 2] = float("-inf")  # the third key is padding
    out = attn(x, attn.project_kv(x), mask=mask)
    changed = x.clone()
    changed[0, 2] = 100.0
    out2 = attn(changed[:, :2].expand(1, 2, 8).contiguous(), attn.project_kv(changed), mask=mask)
    torch.testing.assert_close(out[:, :2], out2)


@pytest.mark.parametrize("kinds, words", [("linear,softmax,softmax", "3 kinds for 2 encoder layers"),
                                          ("cosine", "softmax, relu, linear")])
def test_bad_encoder_attention_is_refused(kinds, words):
    with pytest.raises(UserError, match=words):
        attention_config(kinds)
