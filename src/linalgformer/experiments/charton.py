"""Tokenized linear algebra (Charton): a seq2seq transformer on matrices written as tokens.

A training example is ``<bos> OUTPUT <eos>`` predicted from ``INPUT`` (both written by the problem's
number encodings); the loss is token cross-entropy; evaluation decodes greedily (or by beam search)
and lets the problem verify each prediction with its own mathematics (see ``problems.charton``).
The paper reproductions (tables, grids, retraining) are in :mod:`linalgformer.reproduce.charton`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from linalgformer.errors import UserError
from linalgformer.files import atomic_write_lines
from linalgformer.experiments.plugin import Batch
from linalgformer.experiments.plugin import Experiment as BaseExperiment
from linalgformer.models.answer_grammar import AnswerGrammar
from linalgformer.models.charton_decoding import beam_search, greedy
from linalgformer.models.charton import ModelConfig, Seq2Seq, read_out_index
from linalgformer.models.matrix_positions import MatrixLayout, token_flags
from linalgformer.problems.charton.config import ProblemConfig, dim_range, size_span
from linalgformer.problems.charton.contract import TOLERANCES, Examples, Problem, Scores, join_examples
from linalgformer.problems.charton.datafile import read_examples, read_test_examples
from linalgformer.problems.charton.matrix_problem import MatrixProblem
from linalgformer.problems.charton.matrix_problem import subset as examples_subset
from linalgformer.problems.charton.novelty import TrainingRange
from linalgformer.problems.charton.registry import curriculum_problems, make_problem
from linalgformer.sequences import Sequences, take, with_bos_eos
from linalgformer.tokens import CONTINUOUS, NUM_TOKEN, matrix_tokens, sequence_text

__all__ = ["ProblemConfig", "ModelConfig", "Experiment"]

EVAL_BATCH = 256


WARN_ERROR = 0.05  # predict warns of an answer farther than this from numpy's (the verifier's d1)


def accuracy_key(tau: float) -> str:
    return f"acc@{tau:g}"


class Experiment(BaseExperiment):
    primary_metric = accuracy_key(0.05)
    reads_data_files = True

    def __init__(self, config):
        super().__init__(config)
        self.problem = make_problem(config.problem)
        self.vocab = self.problem.vocab
        # the continuous encoding (models/number_values.py) on either side
        codecs = self.problem.codecs
        self.values_in, self.values_out = (codecs.input.name == CONTINUOUS, codecs.output.name == CONTINUOUS)
        if (self.values_in or self.values_out) and config.train.data_file:
            raise UserError("train.data_file holds token text: a continuous encoding draws fresh examples "
                            "(drop train.data_file or use a token encoding).")
        if config.model.value_loss and (config.train.data_file or self.values_out):
            raise UserError("model.value_loss regresses the values of freshly drawn token answers: it cannot be used "
                            "with train.data_file or a continuous answer.")
        self.file_data = read_examples(config.train.data_file, self.problem) if config.train.data_file else None
        self.stages = curriculum_problems(config.problem)
        if self.stages and self.file_data is not None:
            raise UserError("problem.curriculum draws fresh examples: it cannot be used with train.data_file.")
        self.train_problem = self.problem
        self._class_of: torch.Tensor | None = None  # token id -> read-out class (built on first use)
        self.restrict_read_out = True
        self.use_grammar = False
        self._grammar: AnswerGrammar | None = None
        self.set_grammar(config.model.grammar)

    def set_grammar(self, on: bool) -> None:
        """Decode with the answer grammar (``model.grammar``; ``evaluate --grammar`` for any run)."""
        if on and self.values_out:
            raise UserError("the answer grammar constrains written tokens: a continuous answer is read out at once.")
        if on and not isinstance(self.problem, MatrixProblem):
            raise UserError("the answer grammar needs one problem per model: cotraining mixes answers.")
        self.use_grammar = bool(on)

    def answer_grammar(self) -> AnswerGrammar | None:
        """The grammar decoding obeys, or None when ``use_grammar`` is off (built on first use)."""
        if not self.use_grammar:
            return None
        if self._grammar is None:
            self._grammar = AnswerGrammar(self.vocab, self.problem.codecs.output)
        return self._grammar

    # -- model and data --------------------------------------------------------------------------

    def build_model(self) -> Seq2Seq:
        self.check_positions()
        try:
            return Seq2Seq(self.config.model, len(self.vocab), self.vocab.pad_id, self.vocab.bos_id,
                           self.vocab.eos_id, output_ids=self.answer_ids(), layout=self.matrix_layout(),
                           token_values=self.vocab.token_values(),
                           num_id=self.vocab.stoi[NUM_TOKEN] if self.values_in else None,
                           regression=self.values_out)
        except ValueError as err:
            raise UserError(f"bad model config: {err}") from None

    def check_positions(self) -> None:
        """The longest source and answer the problem (and each curriculum stage) writes fit the
        model's ``max_len`` positions: refused at build time, not by an index error in a step."""
        limit = self.config.model.max_len
        for problem in [self.problem] + [p for _, p in self.stages]:
            parts = getattr(problem, "problems", {"": problem}).values()  # cotraining: its tasks
            high = max(part.sampling.max_dim for part in parts)
            longest = max(problem.max_input_length(high), problem.max_output_length(high) + 2)
            if longest > limit:
                raise UserError(f"a {high}x{high} {problem.name} example needs {longest} positions but "
                                f"model.max_len is {limit}: raise model.max_len or lower the dimension.")

    def matrix_layout(self) -> MatrixLayout | None:
        """What matrix-aware positions need of the problem (None for the other kinds)."""
        if self.config.model.positions != "matrix":
            return None
        if not isinstance(self.problem, MatrixProblem):
            raise UserError("model.positions=matrix needs one problem per model: cotraining mixes "
                            "layouts (use sinusoidal or learned positions).")
        flags = token_flags(self.vocab.token_kinds(), self.vocab.dim_values())
        return MatrixLayout(**flags, max_dim=self.vocab.max_dim, input_split=self.problem.input_split,
                            output_coupling=self.problem.output_coupling)

    def set_step(self, step: int) -> None:
        """Training batches come from the curriculum's stage of ``step`` (the problem before it)."""
        current = [problem for start, problem in self.stages if start <= step]
        self.train_problem = current[-1] if current else self.problem

    def sample_batch(self, rng: np.random.Generator, size: int) -> Batch:
        if self.file_data is not None:
            return self.tensors(*(take(seq, rng.integers(0, len(seq.lengths), size)) for seq in self.file_data))
        examples = self.train_problem.sample(rng, size)
        return self.tensors(*self.train_problem.encode(examples), examples)

    def tensors(self, src: Sequences, tgt: Sequences, examples: Examples | None = None) -> Batch:
        batch = {"src_ids": torch.from_numpy(src.ids.astype(np.int64)),
                 "src_len": torch.from_numpy(src.lengths.astype(np.int64)),
                 "tgt_ids": torch.from_numpy(with_bos_eos(tgt, self.vocab)),
                 "tgt_len": torch.from_numpy(tgt.lengths.astype(np.int64) + 2)}
        if src.values is not None:
            batch["src_values"] = torch.from_numpy(src.values.astype(np.float64))
        if (self.values_out or self.config.model.value_loss) and examples is not None:
            batch.update(answer_tensors(self.train_problem, examples))
        return batch

    def loss(self, model, batch: Batch) -> torch.Tensor:
        """Mean token cross-entropy over the batch's answer tokens.

        When lengths vary (mixed sizes), the batch is sorted by length and run as
        ``train.length_buckets`` chunks, each cut to its own longest source and answer: the same
        loss and gradient as the padded batch, without computing the padding."""
        if self.values_out:
            z = model(batch["src_ids"], batch["src_len"], values=batch.get("src_values"), shapes=batch["out_shape"]).numbers
            return relative_error_loss(z, batch["tgt_values"], batch["tgt_mask"])
        buckets = 1 if self.config.model.encoder_only else self.config.train.length_buckets  # reads out source positions
        chunks = length_chunks(batch["src_len"], batch["tgt_len"], buckets)
        values, weight = batch.get("src_values"), self.config.model.value_loss
        answers = (batch["tgt_values"], batch["tgt_mask"]) if weight else None
        if chunks is None:
            chunks = [torch.arange(len(batch["src_len"]))]
        token_sum, value_sum = 0.0, 0.0
        for idx in chunks:
            s, t = int(batch["src_len"][idx].max()), int(batch["tgt_len"][idx].max())
            tokens, entries = self._token_loss(model, batch["src_ids"][idx, :s], batch["src_len"][idx],
                                               batch["tgt_ids"][idx, :t], None if values is None else values[idx, :s],
                                               None if answers is None else (answers[0][idx], answers[1][idx]))
            token_sum, value_sum = token_sum + tokens, value_sum + entries
        loss = token_sum / (batch["tgt_len"] - 1).sum()
        return loss + weight * value_sum / len(batch["src_len"]) if weight else loss

    def _token_loss(self, model, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor,
                    values: torch.Tensor | None = None, answers: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(summed token cross-entropy, summed auxiliary value error (0 without ``answers``: the
        targets in their units and which exist, as :func:`answer_tensors`))."""
        out = model(src, src_len, tgt[:, :-1], values, entry_values=answers is not None)
        logits = out.logits  # (B, T-1, K): K answer tokens
        tokens = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), self.target_classes(tgt[:, 1:]).reshape(-1),
                                 ignore_index=-100, reduction="sum")
        if answers is None:
            return tokens, 0.0
        return tokens, entry_value_error(out.entry_values, out.entries, *answers).sum()

    def answer_ids(self) -> list[int]:
        """The token ids the model reads out: :func:`answer_token_ids`, or every id when
        ``restrict_read_out`` is off (what the benchmarks compare against)."""
        return answer_token_ids(self.problem) if self.restrict_read_out else list(range(len(self.vocab)))

    def target_classes(self, tgt: torch.Tensor) -> torch.Tensor:
        """Target ids -> class indices of the model's read-out (``answer_token_ids`` order); padding
        -> -100 (ignored). A token no answer may contain is refused."""
        if self._class_of is None or self._class_of.device != tgt.device:
            self._class_of = read_out_index(self.answer_ids(), len(self.vocab)).to(tgt.device)
        classes = self._class_of[tgt]
        pad = tgt == self.vocab.pad_id
        if bool(((classes < 0) & ~pad).any()):
            raise UserError("a target holds a token that the output encoding never writes "
                            "(an input-only token): the data do not match this problem.")
        return classes.masked_fill(pad, -100)

    def batch_tokens(self, batch: Batch) -> int:
        return int(batch["src_len"].sum() + batch["tgt_len"].sum())

    # -- evaluation ------------------------------------------------------------------------------

    def test_problems(self, distribution: str | None = None, dims: list[int] | None = None,
                      bound: float | None = None):
        """(label, problem) pairs: one per test law and test size (defaults: the training ones);
        ``bound``: test coefficients on +-bound instead of the training range."""
        cfg = self.config.problem if bound is None else dataclasses.replace(self.config.problem, bound=bound)
        laws = [law.strip() for law in distribution.split(",")] if distribution else [cfg.distribution]
        sizes = dims or [None]
        out = []
        for law in laws:
            for dim in sizes:
                change = {"distribution": law}
                if dim is not None:
                    change.update(dim=dim, min_dim=dim, max_dim=dim)
                out.append(((law or "default", dim), make_problem(dataclasses.replace(cfg, **change))))
        return out

    def test_sets(self, count: int, seed: int, distribution: str | None = None, dims: list[int] | None = None,
                  data: Path | None = None, bound: float | None = None) -> list[tuple[Problem, Examples]]:
        """(problem, examples) to score: ``count`` drawn from ``seed`` per test law and size, or the
        examples of the file ``data`` (refused line by line where they do not fit the model)."""
        if data is None:
            return [(problem, problem.sample(np.random.default_rng([seed, dim or 0]), count))
                    for (_, dim), problem in self.test_problems(distribution, dims, bound)]
        if not isinstance(self.problem, MatrixProblem):
            raise UserError("evaluating on a data file needs a model of one problem, not cotraining.")
        if distribution or dims or bound is not None:
            raise UserError("a data file is its own test set: it takes no --distribution, --dim or --bound.")
        return [(self.problem, read_test_examples(data, self.problem, dim_range(self.config.problem)))]

    def evaluate(self, model, count: int, seed: int, device: torch.device, *,
                 distribution: str | None = None, dims: list[int] | None = None, beam: int = 1,
                 predictions: Path | None = None, data: Path | None = None, bound: float | None = None,
                 **_: Any) -> dict[str, Any]:
        per_case, rows = [], []
        for problem, examples in self.test_sets(count, seed, distribution, dims, data, bound):
            if self.values_out:  # answers as numbers; tokens are decoded (once) by the scoring itself
                decoded, preds = self.answers(model, problem, examples, device, beam)
                scores = problem.score_matrices(examples, decoded)
            else:
                decoded, preds = None, self.predict(model, problem, examples, device, beam)
                scores = problem.score(examples, preds)
            per_case.append(scores)
            if predictions is not None:
                rows.extend(prediction_rows(problem, examples, decoded, preds, scores))
        if predictions is not None:
            write_predictions(predictions, rows)
        return summarize(per_case)

    def answers(self, model, problem, examples: Examples, device: torch.device,
                beam: int = 1) -> tuple[list[np.ndarray | None], list[list[int]] | None]:
        """(the answers as matrices (None: not a matrix), their token ids or None for a continuous
        answer), in the order of ``examples``."""
        if self.values_out:
            if beam > 1:
                raise UserError("beam search writes tokens: a continuous answer is read out at once (drop --beam).")
            return self.predict_values(model, problem, examples, device), None
        preds = self.predict(model, problem, examples, device, beam)
        return [problem.decode_output(ids) for ids in preds], preds

    def predict_values(self, model, problem, examples: Examples, device: torch.device) -> list[np.ndarray]:
        """A continuous model's answers for ``examples``: z * max|input|**d, in batches."""
        src, _ = problem.encode(examples)
        check_fits(model, src, problem, examples)
        model.eval()
        out: list[np.ndarray] = []
        with torch.no_grad():
            for start in range(0, len(examples), EVAL_BATCH):
                rows = np.arange(start, min(start + EVAL_BATCH, len(examples)))
                part = examples_subset(examples, rows)
                width = int(src.lengths[rows].max())
                values = None if src.values is None else torch.from_numpy(src.values[rows, :width]).to(device)
                shapes = answer_tensors(problem, part)["out_shape"].to(device)
                z = model.regress(torch.from_numpy(src.ids[rows, :width]).to(device),
                                  torch.from_numpy(src.lengths[rows]).to(device), shapes, values)
                out.extend(from_units(problem, part, z.double().cpu().numpy()))
        return out

    def predict(self, model, problem, examples: Examples, device: torch.device, beam: int = 1) -> list[list[int]]:
        """Decoded output ids (no specials) for ``examples``, in batches."""
        src, _ = problem.encode(examples)
        check_fits(model, src, problem, examples)
        max_len = problem.max_output_length(max(examples.dims)) + 2
        model.eval()
        order = np.argsort(src.lengths, kind="stable")  # batches of similar sizes: less padding, earlier stops
        out: list[list[int]] = [[] for _ in range(len(examples))]
        for start in range(0, len(examples), EVAL_BATCH):
            rows = order[start:start + EVAL_BATCH]
            ids = torch.from_numpy(src.ids[rows].astype(np.int64)).to(device)
            lens = torch.from_numpy(src.lengths[rows].astype(np.int64)).to(device)
            ids = ids[:, : int(lens.max())]
            values = None if src.values is None else torch.from_numpy(src.values[rows, : ids.shape[1]]).to(device)
            grammar = self.answer_grammar()
            shapes = None if grammar is None else torch.from_numpy(answer_shapes(problem, examples, rows)).to(device)
            decoded = (beam_search(model, ids, lens, max_len, beam=beam, values=values, grammar=grammar, shapes=shapes)
                       if beam > 1 else greedy(model, ids, lens, max_len, values=values, grammar=grammar, shapes=shapes))
            for row, tokens in zip(rows, decoded):
                out[row] = tokens
        return out

    def token_accuracy(self, model, problem, examples: Examples, device: torch.device) -> dict[str, float]:
        """Teacher forcing on ``examples`` (the true answer so far given): the share of next tokens
        the model ranks first, by what the token writes: ``sign``, ``mantissa``, ``exponent``,
        ``digit k`` (P10's k-th digit), ``number`` (FP15), ``dim`` (the answer's shape), ``<eos>``.
        Where a token answer goes wrong: a sign at 50% is a coin toss. {} for a continuous answer."""
        if self.values_out:
            return {}
        src, tgt = problem.encode(examples)
        check_fits(model, src, problem, examples)
        labels = self.token_labels(tgt)
        batch = self.tensors(src, tgt)
        right: dict[str, list[int]] = {}
        model.eval()
        with torch.no_grad():
            for start in range(0, len(examples), EVAL_BATCH):
                rows = slice(start, start + EVAL_BATCH)
                s, t = int(batch["src_len"][rows].max()), int(batch["tgt_len"][rows].max())
                tgt_ids = batch["tgt_ids"][rows, :t].to(device)
                values = batch.get("src_values")
                logits = model(batch["src_ids"][rows, :s].to(device), batch["src_len"][rows].to(device),
                               tgt_ids[:, :-1], None if values is None else values[rows, :s].to(device)).logits
                hit = (logits.argmax(-1) == self.target_classes(tgt_ids[:, 1:])).cpu().numpy()
                for label, ok in zip(labels[rows, : t - 1].ravel(), hit.ravel()):
                    if label:
                        right.setdefault(label, []).append(int(ok))
        return {label: float(np.mean(v)) for label, v in right.items()}

    def token_labels(self, tgt: Sequences) -> np.ndarray:
        """(N, T + 1) what each answer token writes (see :meth:`token_accuracy`), aligned with the
        targets of teacher forcing (the answer, then <eos>); "" for padding."""
        kinds = np.array(self.vocab.token_kinds(), dtype=object)
        out = np.full((len(tgt.lengths), tgt.ids.shape[1] + 1), "", dtype=object)
        for i, n in enumerate(tgt.lengths):
            digit = 0
            for t, token in enumerate(tgt.ids[i, :n]):
                kind = kinds[token]
                digit = digit + 1 if kind == "digit" else 0
                out[i, t] = f"digit {digit}" if kind == "digit" else kind
            out[i, n] = "<eos>"
        if not (out == "digit 2").any():  # one digit token per number: P1000's mantissa
            out[out == "digit 1"] = "mantissa"
        return out

    def predict_matrices(self, model, matrices: list[np.ndarray], beam: int = 1) -> list[np.ndarray | None]:
        """The decoded answers to user matrices, in batches (all NaN where the output is not a matrix
        of the answer's shape); each matrix is checked as ``predict`` checks it."""
        parts = [self.problem.examples_from_matrix(matrix) for matrix in matrices]
        for dim in {part.dims[0] for part in parts}:
            check_trained_size(self.config.problem, dim)
        examples = join_examples(parts)
        decoded, _ = self.answers(model, self.problem, examples, next(model.parameters()).device, beam)
        return [d if d is not None and d.shape == t.shape else np.full(t.shape, np.nan)
                for d, t in zip(decoded, examples.targets)]

    def training_sample(self, sample: int = 4096) -> Examples:
        """``sample`` questions of the training distribution, seed 0: what the warnings compare to."""
        return self.problem.sample(np.random.default_rng(0), sample)

    def unseen_tokens(self, src: Sequences, seen: Examples) -> list[str]:
        """The tokens of ``src`` that none of the training questions ``seen`` contains: a sign that
        the question lies outside what the model saw."""
        ids_seen = self.problem.encode(seen)[0]
        known = set(np.unique(ids_seen.ids[ids_seen.ids != self.vocab.pad_id]).tolist())
        ids = src.ids[0, : int(src.lengths[0])].tolist()
        return [self.vocab.to_strings([i])[0] for i in dict.fromkeys(ids) if i not in known]

    @property
    def scale_free(self) -> bool:
        """Numbers in and out by value: the model is exactly equivariant to the input's scale."""
        return self.values_in and self.values_out

    def novelty(self, examples: Examples, seen: Examples) -> np.ndarray:
        """(B,) whether each question lies outside the range of the training questions ``seen``
        (problems.charton.novelty): what ``predict`` warns of without knowing the answer."""
        return TrainingRange.of(seen.inputs, self.scale_free).outside(examples.inputs, self.scale_free)

    def answer(self, model, matrix: np.ndarray, beam: int = 1) -> dict[str, Any]:
        """The model's answer for one user matrix, beside numpy's, with the verifier's error and the
        warnings: tokens or descriptors never seen in training, an answer beyond the 5% tolerance."""
        problem = self.problem
        check_question_shape(problem, self.config.problem, np.shape(matrix))
        examples = problem.examples_from_matrix(matrix)
        check_trained_size(self.config.problem, examples.dims[0])
        device = next(model.parameters()).device
        answers, pred = self.answers(model, problem, examples, device, beam)
        scores = problem.score(examples, pred) if pred is not None else problem.score_matrices(examples, answers)
        decoded = answers[0]
        reference = problem.reference(examples)[0]
        error = float(scores.d1[0]) if np.isfinite(scores.d1[0]) else None
        seen = self.training_sample()
        unseen = [] if self.values_in else self.unseen_tokens(problem.encode(examples)[0], seen)
        novel = TrainingRange.of(seen.inputs, self.scale_free).reasons(examples.inputs[0], self.scale_free)
        return {"problem": problem.name, "unseen_tokens": unseen, "outside_training": novel,
                "warning": answer_warning(unseen, novel, error, self.config.problem),
                "prediction": None if decoded is None else np.asarray(decoded).tolist(),
                "reference": np.asarray(reference).tolist(), "error": error,
                "valid": bool(scores.valid[0]),
                "prediction_text": " ".join(problem.vocab.to_strings(pred[0] if pred else [])) if decoded is None
                else np.array2string(np.asarray(decoded), precision=4, suppress_small=True),
                "reference_text": np.array2string(np.asarray(reference), precision=4, suppress_small=True)}


def answer_warning(unseen: list[str], novel: list[str], error: float | None, problem) -> str | None:
    """One sentence of everything ``predict`` should say about an answer (None: nothing)."""
    parts = []
    if error is None or error > WARN_ERROR:
        parts.append("the answer is not within 5% of numpy's" + ("" if error is None else f" (off by {error:.1%})"))
    if unseen:
        parts.append(unseen_warning(unseen, problem))
    if novel:
        parts.append("the question lies outside the training data: " + "; ".join(novel))
    return "; ".join(parts) + "." if parts else None


def unseen_warning(tokens: list[str], problem) -> str:
    return (f"the question holds tokens that never occur in this model's training data ({', '.join(tokens)}): "
            f"e.g. an exact 0 or an entry outside the trained range (coefficients {problem.coefficients} on "
            f"+-{problem.bound:g}); its answer may be unreliable")


def length_chunks(src_len: torch.Tensor, tgt_len: torch.Tensor, buckets: int) -> list[torch.Tensor] | None:
    """Row indices of up to ``buckets`` chunks of similar length (sorted by source, then answer
    length), or None when one padded batch wastes nothing (all lengths equal) or ``buckets`` <= 1."""
    if buckets <= 1 or (bool((src_len == src_len[0]).all()) and bool((tgt_len == tgt_len[0]).all())):
        return None
    order = torch.argsort(src_len * (int(tgt_len.max()) + 1) + tgt_len, stable=True)
    return [idx for idx in order.tensor_split(min(buckets, len(order))) if len(idx)]


def check_fits(model, src: Sequences, problem, examples: Examples) -> None:
    limit = getattr(getattr(model, "cfg", None), "max_len", None)
    longest = max(int(src.lengths.max()), problem.max_output_length(max(examples.dims)) + 2)
    if limit is not None and longest > limit:
        raise UserError(f"a {max(examples.dims)}x{max(examples.dims)} {problem.name} example needs "
                        f"{longest} positions but the model has only {limit}.")


def summarize(parts: list[Scores]) -> dict[str, Any]:
    """Overall accuracies plus tables by law and by size."""
    all_scores = concat_scores(parts)
    out = score_stats(all_scores)
    out["by_law"] = grouped(all_scores, all_scores.laws)
    out["by_dim"] = grouped(all_scores, [str(d) for d in all_scores.dims])
    return out


def score_stats(s: Scores) -> dict[str, float]:
    n = max(len(s.valid), 1)
    stats = {accuracy_key(tau): float(c.sum() / n) for tau, c in s.correct.items()}
    stats.update(exact=float(s.exact.sum() / n), invalid=float((~s.valid).sum() / n), count=len(s.valid))
    finite = s.d1[np.isfinite(s.d1)]
    stats["median_d1"] = float(np.median(finite)) if finite.size else float("inf")
    return stats


def grouped(s: Scores, keys: list[str]) -> dict[str, dict[str, float]]:
    keys_arr = np.asarray(keys)
    return {key: score_stats(subset(s, keys_arr == key)) for key in dict.fromkeys(keys)}


def subset(s: Scores, mask: np.ndarray) -> Scores:
    idx = np.flatnonzero(mask)
    return Scores(s.valid[idx], s.exact[idx], s.d1[idx], s.d2[idx], s.dmax[idx],
                  [s.laws[i] for i in idx], [s.dims[i] for i in idx])


def concat_scores(parts: list[Scores]) -> Scores:
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return Scores(cat("valid"), cat("exact"), cat("d1"), cat("d2"), cat("dmax"),
                  [x for p in parts for x in p.laws], [x for p in parts for x in p.dims])


def prediction_rows(problem, examples: Examples, decoded: list[np.ndarray | None] | None,
                    preds: list[list[int]] | None, scores: Scores) -> list[dict]:
    """One JSON row per example; the prediction as its tokens, or (a continuous answer) as numbers."""
    src, tgt = problem.encode(examples)
    rows = []
    for i in range(len(examples)):
        if preds is not None:
            prediction = " ".join(problem.vocab.to_strings(preds[i]))
        else:
            prediction = " ".join(matrix_tokens(problem.codecs.output, decoded[i])) if decoded[i] is not None else ""
        rows.append({"input": sequence_text(problem.vocab, src, i), "target": sequence_text(problem.vocab, tgt, i),
                     "prediction": prediction,
                     "law": scores.laws[i], "dim": int(scores.dims[i]), "valid": bool(scores.valid[i]),
                     "exact": bool(scores.exact[i]),
                     "d1": float(scores.d1[i]) if np.isfinite(scores.d1[i]) else None,
                     "correct@0.05": bool(scores.correct[TOLERANCES[0]][i])})
    return rows


def write_predictions(path: Path, rows: list[dict]) -> None:
    atomic_write_lines(Path(path), (json.dumps(r) for r in rows))


# ----------------------------------------------------------------------------- continuous answers


def answer_units(problem, examples: Examples) -> list[np.ndarray]:
    """Per example, the unit its answer is read out in: max|input|**d for each entry (d: the
    problem's ``output_degrees``; max|input| is 1 for an all-zero input)."""
    out = []
    for x, dim, target in zip(examples.inputs, examples.dims, examples.targets):
        scale = float(np.abs(x).max()) if np.size(x) else 0.0
        scale = scale if scale > 0 else 1.0
        degrees = problem.output_degrees(*problem.operand_dims(np.shape(x)))
        if degrees.shape != target.shape:
            raise ValueError(f"{problem.name}: degrees of shape {degrees.shape} for an answer of shape {target.shape}")
        out.append(scale ** degrees)
    return out


def answer_shapes(problem, examples: Examples, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 2) int64: the (rows, cols) of the answers to questions ``rows``, as the
    question's shape implies them (what the answer grammar lets the header say)."""
    shapes = [problem.output_shape(*problem.operand_dims(examples.inputs[i].shape)) for i in rows]
    return np.array(shapes, dtype=np.int64).reshape(len(rows), 2)


def answer_tensors(problem, examples: Examples) -> dict[str, torch.Tensor]:
    """``out_shape`` (B, 2), the targets in their units row-major ``tgt_values`` (B, P) float32 and
    ``tgt_mask`` (B, P) for the entries that exist (P: the largest answer)."""
    units = answer_units(problem, examples)
    shapes = np.array([t.shape for t in examples.targets], dtype=np.int64).reshape(len(examples), 2)
    width = int(shapes.prod(axis=1).max(initial=1))
    values, mask = np.zeros((len(examples), width)), np.zeros((len(examples), width), dtype=bool)
    for i, (target, unit) in enumerate(zip(examples.targets, units)):
        flat = (target / unit).reshape(-1)
        values[i, : flat.size], mask[i, : flat.size] = flat, True
    return {"out_shape": torch.from_numpy(shapes), "tgt_values": torch.from_numpy(values.astype(np.float32)),
            "tgt_mask": torch.from_numpy(mask)}


def from_units(problem, examples: Examples, z: np.ndarray) -> list[np.ndarray]:
    """(B, P) read-outs in units -> the answers as matrices of their targets' shapes."""
    out = []
    for i, (target, unit) in enumerate(zip(examples.targets, answer_units(problem, examples))):
        out.append(z[i, : target.size].reshape(target.shape) * unit)
    return out


def relative_error_loss(z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of sum |z - t| / sum |t| over each answer's entries: the verifiers' d1."""
    return relative_errors(z, target.to(z.device), mask.to(z.device)).mean()


def relative_errors(z: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,): sum |z - t| / sum |t| over each row's ``mask``ed places."""
    error = ((z - target).abs() * mask).sum(1)
    size = (target.abs() * mask).sum(1)
    return error / size.clamp_min(1e-6)


def entry_value_error(z: torch.Tensor, entries: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``model.value_loss``: (B,) the relative error of the values z (B, T) that the decoder positions
    read out for the answer entries ``entries`` (B, T) (-1: none) whose tokens they predict, against
    the targets (B, P) in their units (every token of an entry is held to the entry's value)."""
    target, mask = target.to(z.device), mask.to(z.device)
    index = entries.clamp(min=0)
    real = (entries >= 0) & mask.gather(1, index)
    return relative_errors(z, target.gather(1, index), real)


# ----------------------------------------------------------------------------- read-out and sizes


def answer_token_ids(problem) -> list[int]:
    """The ids an answer can contain, sorted: the specials, the dimension tokens and the tokens of
    the output encoding(s) (each co-trained task's too). The model reads out these rows only."""
    vocab = problem.vocab
    outputs = {problem.codecs.output, *(p.codecs.output for p in getattr(problem, "problems", {}).values())}
    ids = {vocab.pad_id, vocab.bos_id, vocab.eos_id, *(vocab.dim_id(n) for n in range(1, vocab.max_dim + 1))}
    for encoding in outputs:
        ids.update(int(i) for i in vocab.table(encoding))
    return sorted(ids)


SPLIT_WORDS = {"last_column": " ([M|v]: the vector as the last column)", "halves": " ([A|B]: the two matrices side by side)"}


def check_question_shape(problem, cfg: ProblemConfig, shape: tuple[int, ...]) -> None:
    """A question must have the shape the model was trained on: e.g. [M|v] (n x n+1) for
    matrix_vector, n x n for square problems; rectangular models take any shape."""
    if not isinstance(problem, MatrixProblem) or cfg.rectangular or len(shape) != 2:
        return
    rows = problem.operand_dims(shape)[0]
    expected = problem.input_shape(rows, rows)
    if tuple(shape) != tuple(expected):
        note = SPLIT_WORDS.get(problem.input_split, "")
        raise UserError(f"this {problem.name} model takes a {expected[0]}x{expected[1]} input for "
                        f"{rows}x{rows} matrices{note}, got {shape[0]}x{shape[1]}.")


def check_trained_size(cfg: ProblemConfig, dim: int) -> None:
    low, high = dim_range(cfg)
    if not low <= dim <= high:
        raise UserError(f"this model was trained on {size_span(low, high)} matrices, not {dim}x{dim} "
                        "(use `linalgformer evaluate --dim` to study other sizes).")
