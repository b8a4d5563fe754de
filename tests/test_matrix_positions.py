"""Matrix-aware positions: the ids of every problem on 2x2 examples, and cached decoding with them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from linalgformer.errors import UserError
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.models.charton_decoding import beam_search, greedy
from linalgformer.problems.charton.registry import MATRIX_PROBLEMS

ANSWER = 3


def experiment(problem: str, encoding: str = "P1000", dim: int = 2, **model):
    return build_experiment(run_config_from_dict({
        "family": "charton",
        "problem": {"name": problem, "dim": dim, "encoding": encoding},
        "model": {"positions": "matrix", "width": 32, "heads": 4, "enc_layers": 1, "dec_layers": 2,
                  "max_len": 200, **model}}))


def entry_ids(ids: torch.Tensor, first_slot: int = 3) -> list[tuple[int, int, int]]:
    """(operand, row, col) of every number, read at its first token (slot 3)."""
    return [tuple(int(v) for v in ids[t, :3]) for t in range(len(ids)) if int(ids[t, 3]) == first_slot]


def ids_of(problem: str, encoding: str = "P1000"):
    """(source ids (S, 4), decoder ids (T, 4), example) of one 2x2 (or 2x2-based) example."""
    exp = experiment(problem, encoding)
    model = exp.build_model()
    batch = exp.sample_batch(np.random.default_rng(3), 1)
    positions = model.matrix_positions
    src = positions.source(batch["src_ids"]).stack()[0]
    tgt = positions.target(batch["tgt_ids"][:, :-1]).stack()[0]
    return src, tgt, batch


# The input entry, in the written input's frame (i, j'), that answer entry (i, j) shares its ids with.
COUPLED = {
    "transpose": lambda i, j: [(1, j + 1, i + 1)],
    "matrix_sum": lambda i, j: [(1, i + 1, j + 1), (2, i + 1, j + 1)],
}


@pytest.mark.parametrize("encoding", ["P10", "P1000", "B1999", "FP15"])
@pytest.mark.parametrize("problem", [p for p in MATRIX_PROBLEMS])
def test_ids_of_every_problem_on_a_2x2_example(problem, encoding):
    src, tgt, batch = ids_of(problem, encoding)
    exp = experiment(problem, encoding)
    written = exp.problem.input_shape(2, 2) if not exp.problem.symmetric else (2, 2)
    # the header: V{rows} V{cols} are slots 1 and 2, with no operand, row or column
    assert src[0].tolist() == [0, 0, 0, 1] and src[1].tolist() == [0, 0, 0, 2]
    assert tgt[0, 3] == 1 and tgt[1, 3] == 2  # <bos> predicts V{rows}, V{rows} predicts V{cols}
    entries = entry_ids(src)
    assert len(entries) == written[0] * written[1]
    width = {"whole": written[1], "halves": written[1] // 2, "last_column": written[1] - 1}[exp.problem.input_split]
    for k, (operand, row, col) in enumerate(entries):
        i, j = divmod(k, written[1])
        assert (operand, row, col) == ((1, i + 1, j + 1) if j < width else (2, i + 1, j - width + 1))
    # every number token of the source carries its number's operand/row/col and a slot >= 3
    numbers = src[2:]
    assert bool((numbers[:, 3] >= 3).all()) and bool((numbers[:, 0] > 0).all())
    # the answer: operand 3 everywhere it writes a number, and the last input (before <eos>) has none
    answer = tgt[2:-1]
    assert bool((answer[:, 0] == ANSWER).all()) and tgt[-1].tolist() == [0, 0, 0, 0]
    # slot k of a number means the same on both sides (one encoding in and out)
    assert sorted(set(answer[:, 3].tolist())) == sorted(set(numbers[:, 3].tolist()))


@pytest.mark.parametrize("problem", ["transpose", "matrix_sum"])
def test_answer_entries_share_row_and_column_with_their_operands(problem):
    src, tgt, _ = ids_of(problem)
    inputs = entry_ids(src)
    outputs = entry_ids(tgt)
    assert len(outputs) == 4
    for k, (operand, row, col) in enumerate(outputs):
        i, j = divmod(k, 2)
        assert operand == ANSWER
        for coupled in COUPLED[problem](i, j):
            assert coupled in inputs and (row, col) == coupled[1:]


def test_matrix_vector_answer_entry_i_shares_column_i_of_m():
    src, tgt, _ = ids_of("matrix_vector")
    inputs = entry_ids(src)  # [M|v] 2 x 3: M entries operand 1, v entries operand 2 (column 1)
    assert inputs == [(1, 1, 1), (1, 1, 2), (2, 1, 1), (1, 2, 1), (1, 2, 2), (2, 2, 1)]
    assert entry_ids(tgt) == [(ANSWER, 0, 1), (ANSWER, 0, 2)]


def test_transpose_coupling_on_a_rectangular_matrix():
    exp = build_experiment(run_config_from_dict({
        "family": "charton", "problem": {"name": "transpose", "min_dim": 2, "max_dim": 3, "dim": 3,
                                         "rectangular": True},
        "model": {"positions": "matrix", "width": 32, "heads": 4, "enc_layers": 1, "dec_layers": 1}}))
    model = exp.build_model()
    batch = exp.sample_batch(np.random.default_rng(0), 16)
    for b in range(16):
        src = model.matrix_positions.source(batch["src_ids"][b:b + 1]).stack()[0]
        tgt = model.matrix_positions.target(batch["tgt_ids"][b:b + 1, :-1]).stack()[0]
        inputs, outputs = entry_ids(src), entry_ids(tgt)
        assert sorted((r, c) for _, r, c in outputs) == sorted((r, c) for _, r, c in inputs)


def random_weights(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """N(0, 2/fan_in) weights, so that outputs depend on the input and cache bugs cannot hide."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, math.sqrt(2.0 / p.shape[1]))
    return model.eval()


@pytest.mark.parametrize("problem, bias", [("matrix_sum", False), ("transpose", False), ("eigenvalues", False),
                                           ("matrix_sum", True), ("matrix_vector", True)])
def test_cached_step_logits_equal_the_full_decoder(problem, bias):
    exp = experiment(problem, position_bias=bias)
    model = random_weights(exp.build_model(), 0)
    batch = exp.sample_batch(np.random.default_rng(1), 4)
    tgt_in = batch["tgt_ids"][:, :-1]
    with torch.no_grad():
        memory, mask = model.encode(batch["src_ids"], batch["src_len"])
        full = model.to_vocab(model.decode(tgt_in, memory, mask, batch["src_ids"]))
        cache = model.start_cache(memory, mask, batch["src_ids"])
        steps = torch.stack([model.decode_step(tgt_in[:, t], cache, prefix=tgt_in[:, : t + 1])
                             for t in range(tgt_in.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_greedy_with_cache_equals_without_under_matrix_positions(seed):
    exp = experiment("matrix_sum", dim=3)
    model = random_weights(exp.build_model(), seed)
    batch = exp.sample_batch(np.random.default_rng(seed), 6)
    src, src_len = batch["src_ids"], batch["src_len"]
    cached = greedy(model, src, src_len, max_len=40)
    assert cached == greedy(model, src, src_len, max_len=40, use_cache=False)
    assert len({tuple(o) for o in cached}) > 1
    assert beam_search(model, src, src_len, max_len=40, beam=1) == cached


def test_decode_step_without_the_prefix_is_refused():
    exp = experiment("transpose")
    model = exp.build_model()
    batch = exp.sample_batch(np.random.default_rng(0), 2)
    memory, mask = model.encode(batch["src_ids"], batch["src_len"])
    with pytest.raises(ValueError, match="whole prefix"):
        model.decode_step(batch["tgt_ids"][:, 0], model.start_cache(memory, mask))


def test_cotraining_with_matrix_positions_is_refused_in_one_sentence():
    exp = build_experiment(run_config_from_dict({
        "family": "charton", "problem": {"name": "cotraining", "dim": 2},
        "model": {"positions": "matrix", "width": 32, "heads": 4}}))
    with pytest.raises(UserError, match="cotraining"):
        exp.build_model()


@pytest.mark.parametrize("positions", ["matrix", "sinusoidal"])
def test_value_features_decode_the_same_with_and_without_the_cache(positions):
    exp = experiment("matrix_sum", dim=2, value_features=True, positions=positions)
    model = random_weights(exp.build_model(), 1)
    batch = exp.sample_batch(np.random.default_rng(2), 5)
    src, src_len = batch["src_ids"], batch["src_len"]
    cached = greedy(model, src, src_len, max_len=30)
    assert cached == greedy(model, src, src_len, max_len=30, use_cache=False)
    assert len({tuple(o) for o in cached}) > 1


def test_the_structural_bias_scores_keys_that_share_the_query_ids():
    exp = experiment("matrix_sum", position_bias=True)
    model = exp.build_model()
    positions = model.matrix_positions
    with torch.no_grad():
        positions.bias_weight.zero_()
        positions.bias_weight[0, 0, 1] = 1.0  # head 0: +1 for a key of operand A in the query's row
        positions.bias_weight[1, 1, 2] = 2.0  # head 1: +2 for a key of operand B in the query's column
    batch = exp.sample_batch(np.random.default_rng(0), 1)
    src_ids = positions.source(batch["src_ids"])
    tgt_ids = positions.target(batch["tgt_ids"][:, :-1])
    keep = torch.ones(1, 1, 1, batch["src_ids"].shape[1], dtype=torch.bool)
    bias = positions.bias(tgt_ids, src_ids, keep)[0]  # (H, T, S)
    q, k = 4, 2  # the answer's (1, 1) mantissa query; the input's first entry (A[0, 0], sign)
    assert tgt_ids.row[0, q] == src_ids.row[0, k] == 1 and src_ids.operand[0, k] == 1
    assert bias[0, q, k] == 1.0 and bias[1, q, k] == 0.0 and bias[2:].abs().sum() == 0
    b_key = int(torch.nonzero((src_ids.operand[0] == 2) & (src_ids.col[0] == 1))[0])
    assert bias[1, q, b_key] == 2.0 and bias[0, q, b_key] == 0.0
    keep[..., 0] = False
    assert torch.isinf(positions.bias(tgt_ids, src_ids, keep)[0, :, :, 0]).all()


def test_position_bias_needs_matrix_positions():
    with pytest.raises(UserError, match="position_bias"):
        experiment("transpose", positions="sinusoidal", position_bias=True)


@pytest.mark.parametrize("seed", range(2))
def test_greedy_and_beam_with_the_structural_bias_use_the_cache_exactly(seed):
    exp = experiment("matrix_vector", dim=3, position_bias=True, value_features=True)
    model = random_weights(exp.build_model(), seed)
    with torch.no_grad():
        model.matrix_positions.bias_weight.normal_(0.0, 2.0)
    batch = exp.sample_batch(np.random.default_rng(seed), 5)
    src, src_len = batch["src_ids"], batch["src_len"]
    cached = greedy(model, src, src_len, max_len=30)
    assert cached == greedy(model, src, src_len, max_len=30, use_cache=False)
    assert beam_search(model, src, src_len, max_len=30, beam=1) == cached
    assert len({tuple(o) for o in cached}) > 1
