"""Tokenized linear algebra (Charton): a seq2seq transformer on matrices written as tokens.

A training example is ``<bos> OUTPUT <eos>`` predicted from ``INPUT`` (both written by the problem's
number encodings); the loss is token cross-entropy; evaluation decodes greedily (or by beam search)
and lets the problem verify each prediction with its own mathematics (see ``problems.charton``).
A continuous answer (``numbers_out``: the ``continuous`` output encoding) is read out as numbers at
once instead. The experiment picks its answer mode once, :class:`TokenAnswers` or
:class:`NumberAnswers`: two objects with the same methods (loss, predict, score, token accuracy).
The scores are gathered by :mod:`linalgformer.experiments.charton_scoring`; the units of numbers read
out live in :mod:`linalgformer.models.number_units`. The paper reproductions (tables, grids,
retraining) are in :mod:`linalgformer.reproduce.charton`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from linalgformer.errors import UserError
from linalgformer.experiments.charton_scoring import accuracy_key, prediction_rows, summarize, write_predictions
from linalgformer.experiments.plugin import Batch
from linalgformer.experiments.plugin import Experiment as BaseExperiment
from linalgformer.models.answer_grammar import AnswerGrammar
from linalgformer.models.charton_decoding import beam_search, greedy
from linalgformer.models.charton import VIEW_AVERAGES, ModelConfig, Seq2Seq, read_out_index
from linalgformer.models.matrix_positions import MatrixLayout, token_flags
from linalgformer.models.newton_refinement import refine_inverse
from linalgformer.models.number_units import (answer_tensors, entry_value_error, from_units, operand_units,
                                              relative_error_loss, relative_errors, sign_free_errors, verifier_errors,
                                              zero_gate_loss)
from linalgformer.problems.charton.config import ProblemConfig, dim_range, size_span
from linalgformer.problems.charton.contract import Examples, Problem, Scores, join_examples
from linalgformer.problems.charton.datafile import example_lines, read_examples, read_test_examples, write_examples
from linalgformer.problems.charton.matrix_problem import MatrixProblem
from linalgformer.problems.charton.matrix_problem import subset as examples_subset
from linalgformer.problems.charton.novelty import TrainingRange
from linalgformer.problems.charton.registry import curriculum_problems, make_problem
from linalgformer.sequences import Sequences, take, with_bos_eos
from linalgformer.tokens import CONTINUOUS, NUM_TOKEN, matrix_tokens

__all__ = ["ProblemConfig", "ModelConfig", "Experiment", "TokenAnswers", "NumberAnswers", "accuracy_key",
           "draw_examples", "example_lines", "write_examples"]  # the last three: `generate` (plugin.py)

EVAL_BATCH = 256
NEWTON_PROBLEMS = ("invert_matrix", "syminverse")  # model.newton_steps refines their answers
VIEW_SEED = 4242  # the invariant views of answer views (evaluate --views) are drawn from [VIEW_SEED, view]


WARN_ERROR = 0.05  # predict warns of an answer farther than this from numpy's (the verifier's d1)


class Experiment(BaseExperiment):
    primary_metric = accuracy_key(0.05)
    reads_data_files = True

    def __init__(self, config):
        super().__init__(config)
        self.problem = make_problem(config.problem)
        self.vocab = self.problem.vocab
        # the continuous encoding (models/number_values.py) on either side
        codecs = self.problem.codecs
        self.values_in, self.numbers_out = (codecs.input.name == CONTINUOUS, codecs.output.name == CONTINUOUS)
        if (self.values_in or self.numbers_out) and config.train.data_file:
            raise UserError("train.data_file holds token text: a continuous encoding draws fresh examples "
                            "(drop train.data_file or use a token encoding).")
        if config.model.value_loss and (config.train.data_file or self.numbers_out):
            raise UserError("model.value_loss regresses the values of freshly drawn token answers: it cannot be used "
                            "with train.data_file or a continuous answer.")
        self.answer_mode = NumberAnswers(self) if self.numbers_out else TokenAnswers(self)
        self.file_data = read_examples(config.train.data_file, self.problem) if config.train.data_file else None
        self.stages = curriculum_problems(config.problem)
        if self.stages and self.file_data is not None:
            raise UserError("problem.curriculum draws fresh examples: it cannot be used with train.data_file.")
        self.check_train_views(config.problem)
        self.train_problem = self.problem
        self._class_of: torch.Tensor | None = None  # token id -> read-out class (built on first use)
        self.restrict_read_out = True
        self.use_grammar = False
        self._grammar: AnswerGrammar | None = None
        self.set_grammar(config.model.grammar)

    def check_train_views(self, cfg) -> None:
        """``problem.train_views`` needs freshly drawn questions of one problem that has answer views,
        without input noise (a view's answer is solved from the noisy question)."""
        if not cfg.train_views:
            return
        if self.file_data is not None or not isinstance(self.problem, MatrixProblem):
            raise UserError("problem.train_views changes freshly drawn questions of one problem: not with "
                            "train.data_file or cotraining.")
        if cfg.noise:
            raise UserError("problem.train_views solves each view's answer from its question: not with problem.noise.")
        if self.problem.answer_view(np.random.default_rng(0), np.ones(self.problem.input_shape(2, 2))) is None:
            raise UserError(f"problem.train_views: {self.problem.name} has no answer views.")

    def set_views(self, views: int) -> None:
        """Answer each question ``views`` times, under changes that leave its answer as it is, and
        average (``evaluate --views``; continuous answers of eigenvalues and singular values)."""
        self.answer_mode.set_views(self.problem, views)

    def set_view_average(self, average: str) -> None:
        """Combine the views' answers by their ``mean`` or ``median`` (``evaluate --view-average``)."""
        self.answer_mode.set_view_average(average)

    def set_newton_steps(self, steps: int) -> None:
        """Refine a continuous inverse by ``steps`` Newton-Schulz steps after the model's guess,
        whatever it was trained with (``evaluate --newton-steps``; 0: the guess alone)."""
        if self.problem.name not in NEWTON_PROBLEMS or not self.numbers_out:
            raise UserError(f"Newton-Schulz steps refine a continuous inverse (problems: {', '.join(NEWTON_PROBLEMS)}, "
                            f"numbers read out by value), not this model's {self.problem.name} answers.")
        self.answer_mode.newton_steps = int(steps)

    def set_grammar(self, on: bool) -> None:
        """Decode with the answer grammar (``model.grammar``; ``evaluate --grammar`` for any run)."""
        if on:
            self.answer_mode.check_grammar()
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
        if self.config.model.newton_steps and self.problem.name not in NEWTON_PROBLEMS:
            raise UserError(f"model.newton_steps refines an inverse (problems: {', '.join(NEWTON_PROBLEMS)}), "
                            f"not {self.problem.name}.")
        if self.config.model.sign_free and not getattr(self.problem, "sign_free_columns", False):
            raise UserError(f"model.sign_free is for answers whose vectors the verifier takes up to their sign "
                            f"(eigenvectors, singularvectors), not {self.problem.name}.")
        if self.config.model.operand_units and not getattr(self.problem, "bilinear", False):
            raise UserError(f"model.operand_units is for answers linear in each operand apart (matrix_vector, "
                            f"matrix_product), not {self.problem.name}.")
        try:
            return Seq2Seq(self.config.model, len(self.vocab), self.vocab.pad_id, self.vocab.bos_id,
                           self.vocab.eos_id, output_ids=self.answer_ids(), layout=self.matrix_layout(),
                           token_values=self.vocab.token_values(),
                           num_id=self.vocab.stoi[NUM_TOKEN] if self.values_in else None,
                           numbers_out=self.numbers_out)
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
        if self.config.problem.train_views:
            examples = self.train_problem.under_views(rng, examples, self.config.problem.train_views)
        if self.config.model.operand_units:
            examples, _ = operand_units(self.train_problem, examples)
        return self.tensors(*self.train_problem.encode(examples), examples)

    def tensors(self, src: Sequences, tgt: Sequences, examples: Examples | None = None) -> Batch:
        batch = {"src_ids": torch.from_numpy(src.ids.astype(np.int64)),
                 "src_len": torch.from_numpy(src.lengths.astype(np.int64)),
                 "tgt_ids": torch.from_numpy(with_bos_eos(tgt, self.vocab)),
                 "tgt_len": torch.from_numpy(tgt.lengths.astype(np.int64) + 2)}
        if src.values is not None:
            batch["src_values"] = torch.from_numpy(src.values.astype(np.float64))
        if self.answer_mode.answers_in_units and examples is not None:
            batch.update(answer_tensors(self.train_problem, examples))
        return batch

    def loss(self, model, batch: Batch) -> torch.Tensor:
        """The training loss of the answer mode (:meth:`TokenAnswers.loss`, :meth:`NumberAnswers.loss`)."""
        return self.answer_mode.loss(model, batch)

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

    def analysis_set(self, count: int, seed: int, distribution: str | None = None,
                     data: Path | None = None) -> tuple[Problem, Examples]:
        """One test set to study (``analyze``): the test laws' examples joined, or the file's."""
        sets = self.test_sets(count, seed, distribution, None, data)
        return sets[0] if len(sets) == 1 else (sets[0][0], join_examples([e for _, e in sets]))

    def check_question(self, shape: tuple[int, ...]) -> None:
        """A question of another shape than the model's is refused (:func:`check_question_shape`)."""
        check_question_shape(self.problem, self.config.problem, shape)

    def check_test_bound(self) -> None:
        """Test sets take any coefficient range (``evaluate --bound``)."""

    def suite_problem(self) -> tuple[Problem, list[int]]:
        """(the one matrix problem a robustness suite tests, every size it was trained on)."""
        low, high = dim_range(self.config.problem)
        if not hasattr(self.problem, "unusable_families"):
            raise UserError("suites test a model of one matrix problem, not cotraining.")
        return self.problem, list(range(low, high + 1))

    def check_analyzable(self) -> None:
        """``analyze`` studies any Charton model."""

    def evaluate(self, model, count: int, seed: int, device: torch.device, *,
                 distribution: str | None = None, dims: list[int] | None = None, beam: int = 1,
                 predictions: Path | None = None, data: Path | None = None, bound: float | None = None,
                 **_: Any) -> dict[str, Any]:
        mode, per_case, rows = self.answer_mode, [], []
        for problem, examples in self.test_sets(count, seed, distribution, dims, data, bound):
            predicted = mode.predict(model, problem, examples, device, beam)
            scores = mode.score(problem, examples, predicted)
            per_case.append(scores)
            if predictions is not None:
                rows.extend(prediction_rows(problem, examples, mode.prediction_texts(problem, predicted), scores))
        if predictions is not None:
            write_predictions(predictions, rows)
        return summarize(per_case)

    def answers(self, model, problem, examples: Examples, device: torch.device,
                beam: int = 1) -> tuple[list[np.ndarray | None], list[list[int]] | None]:
        """(the answers as matrices (None: not a matrix), their token ids or None for a continuous
        answer), in the order of ``examples``."""
        return self.answer_mode.answers(problem, self.answer_mode.predict(model, problem, examples, device, beam))

    def predict(self, model, problem, examples: Examples, device: torch.device, beam: int = 1) -> list:
        """The answer mode's predictions for ``examples``, in batches: decoded output ids (no
        specials) for a token answer, the answers as matrices for a continuous one."""
        return self.answer_mode.predict(model, problem, examples, device, beam)

    predict_values = predict  # the name callers of a continuous model know

    def token_accuracy(self, model, problem, examples: Examples, device: torch.device) -> dict[str, float]:
        """:meth:`TokenAnswers.token_accuracy` ({} for a continuous answer)."""
        return self.answer_mode.token_accuracy(model, problem, examples, device)

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
        return self.values_in and self.numbers_out

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


# ----------------------------------------------------------------------------- the answer modes


class TokenAnswers:
    """Answers written as tokens: token cross-entropy (with ``model.value_loss``, plus the
    relative error of each answer entry's value), greedy or beam decoding, scored on the tokens."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment

    @property
    def answers_in_units(self) -> bool:
        """Whether training batches carry the targets in their units (for the value loss)."""
        return bool(self.experiment.config.model.value_loss)

    def check_grammar(self) -> None:
        """The answer grammar constrains written tokens: nothing to refuse."""

    def set_views(self, problem, views: int) -> None:
        if views > 1:
            raise UserError("answer views average numbers read out by value: this model writes tokens "
                            "(a continuous answer has them).")

    def set_view_average(self, average: str) -> None:
        raise UserError("answer views combine continuous answers (numbers read out by value): this model "
                        "writes tokens.")

    def loss(self, model, batch: Batch) -> torch.Tensor:
        """Mean token cross-entropy over the batch's answer tokens, plus ``model.value_loss`` times the
        mean relative error of the answer entries' values when that weight is set.

        When lengths vary (mixed sizes), the batch is sorted by length and run as
        ``train.length_buckets`` chunks, each cut to its own longest source and answer: the same
        loss and gradient as the padded batch, without computing the padding."""
        config = self.experiment.config
        buckets = 1 if config.model.encoder_only else config.train.length_buckets  # reads out source positions
        chunks = length_chunks(batch["src_len"], batch["tgt_len"], buckets)
        values, weight = batch.get("src_values"), config.model.value_loss
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
        classes = self.experiment.target_classes(tgt[:, 1:])
        tokens = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), classes.reshape(-1),
                                 ignore_index=-100, reduction="sum")
        if answers is None:
            return tokens, 0.0
        return tokens, entry_value_error(out.entry_values, out.entries, *answers).sum()

    def predict(self, model, problem, examples: Examples, device: torch.device, beam: int = 1) -> list[list[int]]:
        """Decoded output ids (no specials) for ``examples``, in batches of similar sizes (less
        padding, earlier stops)."""
        src, _ = problem.encode(examples)
        check_fits(model, src, problem, examples)
        max_len = problem.max_output_length(max(examples.dims)) + 2
        model.eval()
        grammar = self.experiment.answer_grammar()
        decode = partial(beam_search, beam=beam) if beam > 1 else greedy
        out: list[list[int]] = [[] for _ in range(len(examples))]
        for rows, ids, lens, values in source_batches(src, np.argsort(src.lengths, kind="stable"), device):
            shapes = None if grammar is None else torch.from_numpy(answer_shapes(problem, examples, rows)).to(device)
            for row, tokens in zip(rows, decode(model, ids, lens, max_len, values=values, grammar=grammar, shapes=shapes)):
                out[row] = tokens
        return out

    def answers(self, problem, predicted: list[list[int]]) -> tuple[list[np.ndarray | None], list[list[int]]]:
        """(the decoded answers as matrices (None: not a matrix), the token ids)."""
        return [problem.decode_output(ids) for ids in predicted], predicted

    def score(self, problem, examples: Examples, predicted: list[list[int]]) -> Scores:
        return problem.score(examples, predicted)

    def prediction_texts(self, problem, predicted: list[list[int]]) -> list[str]:
        return [" ".join(problem.vocab.to_strings(ids)) for ids in predicted]

    def token_accuracy(self, model, problem, examples: Examples, device: torch.device) -> dict[str, float]:
        """Teacher forcing on ``examples`` (the true answer so far given): the share of next tokens
        the model ranks first, by what the token writes: ``sign``, ``mantissa``, ``exponent``,
        ``digit k`` (P10's k-th digit), ``number`` (FP15), ``dim`` (the answer's shape), ``<eos>``.
        Where a token answer goes wrong: a sign at 50% is a coin toss."""
        experiment = self.experiment
        src, tgt = problem.encode(examples)
        check_fits(model, src, problem, examples)
        labels = experiment.token_labels(tgt)
        batch = experiment.tensors(src, tgt)
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
                hit = (logits.argmax(-1) == experiment.target_classes(tgt_ids[:, 1:])).cpu().numpy()
                for label, ok in zip(labels[rows, : t - 1].ravel(), hit.ravel()):
                    if label:
                        right.setdefault(label, []).append(int(ok))
        return {label: float(np.mean(v)) for label, v in right.items()}


class NumberAnswers:
    """A continuous answer: one number per answer entry, read out at once in units of
    max|input|**d (:mod:`linalgformer.models.number_units`); trained on the relative error the
    verifiers score and scored on the matrices themselves."""

    answers_in_units = True  # training batches carry the targets in their units

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.newton_steps = experiment.config.model.newton_steps  # models/newton_refinement.py
        self.views = 1  # answers averaged over invariant views of each question (set_views)
        self.view_average = experiment.config.model.view_average  # mean | median of the views' answers
        if experiment.config.model.answer_views > 1:  # the model's own default (model.answer_views)
            self.set_views(experiment.problem, experiment.config.model.answer_views)

    def check_grammar(self) -> None:
        raise UserError("the answer grammar constrains written tokens: a continuous answer is read out at once.")

    def set_views(self, problem, views: int) -> None:
        if views > 1 and problem.answer_view(np.random.default_rng(0), np.eye(*problem.input_shape(2, 2))) is None:
            raise UserError(f"answer views need a problem whose answer follows a signed permutation of the "
                            f"question's rows and columns, not {problem.name}.")
        self.views = views

    def set_view_average(self, average: str) -> None:
        if average not in VIEW_AVERAGES:
            raise UserError(f"the view average must be one of {', '.join(VIEW_AVERAGES)}, got {average!r}.")
        self.view_average = average

    def loss(self, model, batch: Batch) -> torch.Tensor:
        """The mean relative error (the verifiers' d1) of the numbers read out for the batch, plus
        ``model.zero_gate`` times the zero gate's cross-entropy; with ``model.newton_steps`` also
        the error after the Newton-Schulz steps; with ``model.sign_free`` each answer vector's error
        is taken with its nearer sign; with ``model.verifier_loss`` the verifier's own d1 is added."""
        out = model(batch["src_ids"], batch["src_len"], values=batch.get("src_values"), shapes=batch["out_shape"])
        if self.experiment.config.model.sign_free:
            loss = sign_free_errors(out.numbers, batch["tgt_values"], batch["tgt_mask"], batch["tgt_sign_group"]).mean()
        else:
            loss = relative_error_loss(out.numbers, batch["tgt_values"], batch["tgt_mask"])
        if self.newton_steps:  # the guess's own error, and log(1 + the error after the steps): a guess
            # outside the steps' basin (they diverge) is pulled back, not followed to inf
            refined = refine_inverse(out.numbers, batch["src_values"], batch["out_shape"], self.newton_steps)
            loss = loss + torch.log1p(relative_errors(refined, batch["tgt_values"].to(refined.device),
                                                      batch["tgt_mask"].to(refined.device))).mean()
        if self.experiment.config.model.verifier_loss:  # the verifier's own checks, free where the answer is
            loss = loss + self.experiment.config.model.verifier_loss * verifier_errors(
                self.experiment.train_problem, out.numbers, batch["src_values"], batch["in_shape"],
                batch["out_shape"], batch["tgt_values"]).mean()
        if out.zero_logits is None:
            return loss
        weight = self.experiment.config.model.zero_gate
        return loss + weight * zero_gate_loss(out.zero_logits, batch["tgt_values"], batch["tgt_mask"])

    def predict(self, model, problem, examples: Examples, device: torch.device, beam: int = 1) -> list[np.ndarray]:
        """The answers for ``examples``: z * max|input|**d, in batches; with ``views`` > 1 the mean
        (``view_average`` median: the median, entry by entry) of the answers to the question and to
        ``views`` - 1 seeded invariant views of it, each taken back and aligned in sign with the
        sum of those before it."""
        if beam > 1:
            raise UserError("beam search writes tokens: a continuous answer is read out at once (drop --beam).")
        total = self.read_out(model, problem, examples, device)
        each = [[answer] for answer in total]  # per question: its answer to every view, taken back
        for view in range(1, self.views):
            rng = np.random.default_rng([VIEW_SEED, view])
            views = [problem.answer_view(rng, x) for x in examples.inputs]
            seen = dataclasses.replace(examples, inputs=[x for x, _ in views])
            answers = self.read_out(model, problem, seen, device)
            for kept, t, a, (_, back) in zip(each, total, answers, views):
                kept.append(problem.aligned(back(a), t))  # in sign with the sum so far
            total = [t + kept[-1] for t, kept in zip(total, each)]
        if self.views == 1:
            return total
        if self.view_average == "median":
            return [np.median(np.stack(kept), axis=0) for kept in each]
        return [t / self.views for t in total]

    def read_out(self, model, problem, examples: Examples, device: torch.device) -> list[np.ndarray]:
        """One answer per question, as the model reads it out."""
        factors = np.ones(len(examples))
        if self.experiment.config.model.operand_units:
            examples, factors = operand_units(problem, examples)
        src, _ = problem.encode(examples)
        check_fits(model, src, problem, examples)
        model.eval()
        out: list[np.ndarray] = []
        with torch.no_grad():
            for rows, ids, lens, values in source_batches(src, np.arange(len(examples)), device):
                part = examples_subset(examples, rows)
                shapes = answer_tensors(problem, part)["out_shape"].to(device)
                z = refine_inverse(model.regress(ids, lens, shapes, values), values, shapes, self.newton_steps)
                out.extend(from_units(problem, part, z.double().cpu().numpy()))
        return [answer * factor for answer, factor in zip(out, factors)]

    def answers(self, problem, predicted: list[np.ndarray]) -> tuple[list[np.ndarray], None]:
        """(the answers as matrices, None: no tokens were written)."""
        return predicted, None

    def score(self, problem, examples: Examples, predicted: list[np.ndarray]) -> Scores:
        return problem.score_matrices(examples, predicted)  # tokens are decoded (once) by the scoring itself

    def prediction_texts(self, problem, predicted: list[np.ndarray | None]) -> list[str]:
        return [" ".join(matrix_tokens(problem.codecs.output, d)) if d is not None else "" for d in predicted]

    def token_accuracy(self, model, problem, examples: Examples, device: torch.device) -> dict[str, float]:
        """{}: no tokens are written."""
        return {}


def source_batches(src: Sequences, order: np.ndarray, device: torch.device
                   ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """The questions ``src`` taken in ``order``, ``EVAL_BATCH`` at a time: (rows, ids (B, S), lengths
    (B,), values (B, S) or None) on ``device``, each cut to its batch's longest source."""
    for start in range(0, len(order), EVAL_BATCH):
        rows = order[start:start + EVAL_BATCH]
        width = int(src.lengths[rows].max())
        values = None if src.values is None else torch.from_numpy(src.values[rows, :width]).to(device)
        yield (rows, torch.from_numpy(src.ids[rows, :width].astype(np.int64)).to(device),
               torch.from_numpy(src.lengths[rows].astype(np.int64)).to(device), values)


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


def answer_shapes(problem, examples: Examples, rows: np.ndarray) -> np.ndarray:
    """(len(rows), 2) int64: the (rows, cols) of the answers to questions ``rows``, as the
    question's shape implies them (what the answer grammar lets the header say)."""
    shapes = [problem.output_shape(*problem.operand_dims(examples.inputs[i].shape)) for i in rows]
    return np.array(shapes, dtype=np.int64).reshape(len(rows), 2)


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


# ----------------------------------------------------------------------------- examples as data (generate)


def draw_examples(config: ProblemConfig, count: int, seed: int) -> tuple[Problem, Examples]:
    """(problem, ``count`` examples drawn from ``seed``): what ``generate`` writes (with
    ``example_lines`` or ``write_examples``, of problems.charton.datafile)."""
    problem = make_problem(config)
    return problem, problem.sample(np.random.default_rng(seed), count)
