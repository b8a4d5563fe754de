"""``model.grammar``: decoding that writes only well-formed token answers."""

import json

import numpy as np
import pytest
import torch

import linalgformer as lf
from linalgformer.cli import main
from linalgformer.errors import UserError
from linalgformer.experiments.charton import answer_shapes
from linalgformer.experiments.registry import build_experiment, run_config_from_dict
from linalgformer.models.answer_grammar import number_patterns
from linalgformer.models.charton_decoding import beam_search, greedy
from linalgformer.tokens import make_encoding
from linalgformer.training import train_run

ENCODINGS = [("P10", 3, 100), ("P1000", 3, 100), ("P1000", 6, 100), ("B1999", 3, 100), ("FP15", 3, 16)]


def config(problem="matrix_vector", encoding="P1000", grammar=True, problem_keys=None, **model_keys):
    return run_config_from_dict({
        "family": "charton",
        "problem": {"name": problem, "dim": 2, "encoding": encoding, **(problem_keys or {})},
        "model": {"width": 32, "heads": 2, "enc_layers": 1, "dec_layers": 1, "max_len": 128,
                  "grammar": grammar, **model_keys},
        "train": {"max_steps": 4, "batch_size": 8, "warmup_steps": 1, "eval_every": 4, "log_every": 2,
                  "checkpoint_every": 4, "valid_count": 8, "seed": 0},
    })


@pytest.mark.parametrize("name,precision,max_exponent", ENCODINGS)
def test_the_patterns_cover_every_number_the_encoding_writes(name, precision, max_exponent):
    encoding = make_encoding(name=name, precision=precision, max_exponent=max_exponent)
    patterns = set(number_patterns(encoding))
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(300) * 10.0 ** rng.integers(-6, 6, 300), [0.0, -0.0, 1.0, 999.5]])
    for value in values[encoding.fits(values)]:
        assert tuple(encoding.token_kind(t) for t in encoding.encode_float(float(value))) in patterns


def walk(grammar, vocab, ids, shape=None):
    """The grammar's mask before each token of one answer (ids after <bos>, <eos> last; its shape
    read off its header unless given); fails if a token is forbidden where it stands."""
    shape = shape or [int(vocab.itos[i][1:]) for i in ids[:2]]
    state = grammar.start(torch.tensor([shape]))
    masks = []
    for token in ids:
        mask = grammar.mask(state)[0]
        assert mask[token], f"{vocab.itos[token]} forbidden after {[vocab.itos[i] for i in ids[:len(masks)]]}"
        masks.append(mask)
        state = grammar.advance(state, torch.tensor([token]))
    return masks


@pytest.mark.parametrize("problem,encoding", [("matrix_vector", "P1000"), ("transpose", "P10"),
                                              ("matrix_sum", "B1999"), ("eigenvalues", "FP15")])
def test_every_true_answer_is_allowed_and_only_eos_follows_its_last_entry(problem, encoding):
    exp = build_experiment(config(problem, encoding))
    grammar = exp.answer_grammar()
    batch = exp.sample_batch(np.random.default_rng(3), 6)
    for row, length in zip(batch["tgt_ids"], batch["tgt_len"]):
        ids = row[1:int(length)].tolist()  # after <bos>, up to and with <eos>
        masks = walk(grammar, exp.vocab, ids)
        assert masks[-1].sum() == 1 and masks[-1][exp.vocab.eos_id]
        assert not any(m[exp.vocab.eos_id] for m in masks[:-1])  # no early stop


def test_the_worked_example_allows_the_kinds_of_the_docstring():
    exp = build_experiment(config())
    vocab, grammar = exp.vocab, exp.answer_grammar()
    ids = [vocab.stoi[t] for t in ["V2", "V1", "+", "622", "E-2", "-", "101", "E-1", "<eos>"]]
    kinds = vocab.token_kinds()
    allowed = [{kinds[i] for i in m.nonzero().flatten().tolist()} for m in walk(grammar, vocab, ids)]
    with pytest.raises(AssertionError, match="V2 forbidden"):
        walk(grammar, vocab, ids, shape=[3, 1])  # the header must say the question's shape
    assert [m.sum() for m in walk(grammar, vocab, ids)[:2]] == [1, 1]
    assert allowed[:8] == [{"dim"}, {"dim"}, {"sign"}, {"digit"}, {"exponent"}, {"sign"}, {"digit"}, {"exponent"}]
    assert allowed[8] == {"other"}  # <eos>
    # only the output encoding's tokens: B1999 mantissas of an input encoding are not offered
    exp2 = build_experiment(config("matrix_sum", problem_keys={"input_encoding": "B1999"}))
    owned = set(exp2.problem.codecs.output.tokens)
    grammar2 = exp2.answer_grammar()
    offered = grammar2.allowed.any(0).nonzero().flatten().tolist()
    assert offered and all(exp2.vocab.itos[i] in owned for i in offered)


@pytest.mark.parametrize("encoder_only", [False, True])
@pytest.mark.parametrize("encoding", ["P1000", "P10", "FP15"])
def test_an_untrained_model_writes_only_answers_that_decode(encoding, encoder_only):
    keys = {"encoder_only": True, "dec_layers": 0} if encoder_only else {}
    exp = build_experiment(config("matrix_sum", encoding, **keys))
    torch.manual_seed(0)
    model = exp.build_model()
    examples = exp.problem.sample(np.random.default_rng(0), 16)
    for beam in (1, 3):
        if encoder_only and beam > 1:
            continue
        preds = exp.predict(model, exp.problem, examples, torch.device("cpu"), beam)
        assert all(exp.problem.decode_output(p) is not None for p in preds)
        assert all(exp.problem.decode_output(p).shape == (2, 2) for p in preds)


def test_grammar_decoding_is_the_same_with_and_without_the_cache_and_beam_one_is_greedy():
    exp = build_experiment(config("matrix_vector", positions="matrix"))
    torch.manual_seed(1)
    model = exp.build_model()
    examples = exp.problem.sample(np.random.default_rng(1), 8)
    src, _ = exp.problem.encode(examples)
    ids, lens = torch.from_numpy(src.ids.astype(np.int64)), torch.from_numpy(src.lengths.astype(np.int64))
    grammar = exp.answer_grammar()
    shapes = torch.from_numpy(answer_shapes(exp.problem, examples, np.arange(8)))
    assert shapes.tolist() == [[2, 1]] * 8
    cached = greedy(model, ids, lens, 40, grammar=grammar, shapes=shapes)
    assert cached == greedy(model, ids, lens, 40, use_cache=False, grammar=grammar, shapes=shapes)
    assert beam_search(model, ids, lens, 40, beam=1, grammar=grammar, shapes=shapes) == cached
    with pytest.raises(ValueError, match="shapes"):
        greedy(model, ids, lens, 40, grammar=grammar)


def test_a_continuous_answer_or_another_family_is_refused():
    with pytest.raises(UserError, match="continuous answer"):
        build_experiment(config("matrix_vector", "continuous", positions="matrix"))
    spectral = lf.Model.__new__(lf.Model)
    spectral.config, spectral.experiment = run_config_from_dict({"family": "spectral"}), object()
    with pytest.raises(UserError, match="spectral family"):
        spectral.grammar = True


def test_evaluate_grammar_flag_scores_a_run_trained_without_it(tmp_path, capsys):
    out = tmp_path / "run"
    train_run(config(grammar=False), out, progress=False)
    assert not lf.load(out).grammar
    capsys.readouterr()
    results = {}
    for flag in ("--no-grammar", "--grammar"):
        assert main(["evaluate", str(out), "--count", "20", "--json", flag]) == 0
        results[flag] = json.loads(capsys.readouterr().out)
    assert results["--grammar"]["invalid"] == 0.0
    assert results["--no-grammar"]["count"] == results["--grammar"]["count"] == 20
