"""Greedy decoding and beam search for :class:`~linalgformer.models.charton.Seq2Seq`, batched.

Both run the encoder once, then the decoder one position at a time. With the KV cache (the
default) each step feeds only the newest token: every decoder layer keeps the keys/values of the
positions already decoded and the cross-attention keys/values of the memory, computed once (see
:class:`~linalgformer.models.charton.DecoderCache`). Without it (``use_cache=False``, greedy only),
each step re-runs the decoder on the whole prefix; the two give the same tokens.

Conventions:

* ``max_len`` is the most tokens generated per example, ``<eos>`` included; an answer of n tokens
  needs ``max_len >= n + 1`` (and the model's ``cfg.max_len >= max_len`` decoder positions).
* The result is, per example, the token ids generated after ``<bos>``, up to (not including) the
  first ``<eos>``; an example that never emits ``<eos>`` returns ``max_len`` tokens.
* Encoder-only models have no decoder: output position i is the argmax of encoder position i, for
  positions 0..min(max_len, S)-1, cut at the first ``<eos>``. Positions are independent, so this
  argmax is also the most likely output and ``beam_search`` returns the same.
* ``grammar`` (an :class:`~linalgformer.models.answer_grammar.AnswerGrammar`, ``model.grammar``)
  with ``shapes`` (B, 2), each answer's rows and columns: every step picks among the tokens a
  well-formed answer of that shape allows there; beams carry their grammar state.

The model is put in eval mode for the call (and restored after); everything runs under
``torch.inference_mode()`` on the device of ``src``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from linalgformer.models.answer_grammar import AnswerGrammar
from linalgformer.models.charton import Seq2Seq


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _cut_at_eos(tokens: torch.Tensor, eos_id: int) -> list[list[int]]:
    """(B, L) token ids -> per row, the ids before the first eos."""
    rows = []
    for row in tokens.tolist():
        rows.append(row[: row.index(eos_id)] if eos_id in row else row)
    return rows


def _encoder_only(model: Seq2Seq, memory: torch.Tensor, max_len: int,
                  grammar: AnswerGrammar | None = None, shapes: torch.Tensor | None = None) -> list[list[int]]:
    logits = model.to_vocab(model.read_out(memory, min(max_len, memory.shape[1])))  # (B, L, V)
    if grammar is None:
        return _cut_at_eos(logits.argmax(-1), model.eos_id)
    state, tokens = grammar.start(shapes), []
    for t in range(logits.shape[1]):  # the grammar makes positions depend on the tokens before
        tokens.append(grammar.constrain(logits[:, t], state).argmax(-1))
        state = grammar.advance(state, tokens[-1])
    return _cut_at_eos(torch.stack(tokens, dim=1) if tokens else logits.argmax(-1), model.eos_id)


def _next_logits_fn(model: Seq2Seq, memory: torch.Tensor, mask: torch.Tensor, src: torch.Tensor,
                    use_cache: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function from the decoder inputs so far (B, t) to the next-token logits (B, V)."""
    if not use_cache:
        return lambda inputs: model.to_vocab(model.decode(inputs, memory, mask, src)[:, -1])
    cache = model.start_cache(memory, mask, src)
    return lambda inputs: model.decode_step(inputs[:, -1], cache, prefix=inputs)


def _check_max_len(model: Seq2Seq, max_len: int, grammar=None, shapes=None) -> None:
    if max_len < 0:
        raise ValueError(f"max_len must be at least 0, got {max_len}")
    if grammar is not None and shapes is None:
        raise ValueError("decoding with a grammar needs the answers' shapes")
    if not model.cfg.encoder_only and max_len > model.cfg.max_len:
        raise ValueError(f"cannot decode {max_len} tokens with a model of {model.cfg.max_len} positions")


def greedy(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len: int,
           use_cache: bool = True, values: torch.Tensor | None = None,
           grammar: AnswerGrammar | None = None, shapes: torch.Tensor | None = None) -> list[list[int]]:
    """Most likely next token at every step (among those ``grammar`` allows for answers of
    ``shapes``, if given); finished rows are padded and ignored until all end. ``values``: the
    numbers of a continuous input."""
    _check_max_len(model, max_len, grammar, shapes)
    with _eval_mode(model):
        memory, mask = model.encode(src, src_len, values)
        if model.cfg.encoder_only:
            return _encoder_only(model, memory, max_len, grammar, shapes)
        next_logits = _next_logits_fn(model, memory, mask, src, use_cache)
        inputs = torch.full((src.shape[0], 1), model.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        state = None if grammar is None else grammar.start(shapes)
        for _ in range(max_len):
            logits = next_logits(inputs)  # (B, V)
            if grammar is not None:
                logits = grammar.constrain(logits, state)
            token = logits.argmax(-1).masked_fill(done, model.pad_id)  # (B,)
            if grammar is not None:
                state = grammar.advance(state, token)
            inputs = torch.cat([inputs, token[:, None]], dim=1)  # (B, t) -> (B, t+1)
            done |= token == model.eos_id
            if bool(done.all()):
                break
        return _cut_at_eos(inputs[:, 1:], model.eos_id)


def beam_search(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, max_len: int,
                beam: int = 4, length_penalty: float = 1.0, values: torch.Tensor | None = None,
                grammar: AnswerGrammar | None = None, shapes: torch.Tensor | None = None) -> list[list[int]]:
    """Best hypothesis per example, scored sum(log p) / length ** length_penalty.

    Batched over examples x beams with the KV cache. At each step the best 2*beam extensions are
    ranked: an ``<eos>`` among the first ``beam`` finishes a hypothesis (length counts the eos),
    the first ``beam`` others live on. An example stops once its best finished score is at least
    its best live beam's sum / current_length ** length_penalty (exact for length_penalty 0, the
    usual fairseq/XLM heuristic otherwise). At ``max_len``, live beams compete with finished ones.
    ``beam=1`` is greedy decoding. With ``grammar``, forbidden tokens get log-probability -inf
    (the others are renormalised) and each beam carries its grammar state.
    """
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    _check_max_len(model, max_len, grammar, shapes)
    with _eval_mode(model):
        memory, mask = model.encode(src, src_len, values)
        if model.cfg.encoder_only:
            return _encoder_only(model, memory, max_len, grammar, shapes)
        search = _BeamSearch(model, src.shape[0], beam, max_len, length_penalty, src.device)
        cache = model.start_cache(memory, mask, src)
        cache.reorder(torch.arange(src.shape[0], device=src.device).repeat_interleave(beam))  # B -> B*K rows
        state = None if grammar is None else grammar.start(shapes.repeat_interleave(beam, dim=0))
        for _ in range(max_len):
            logits = model.decode_step(search.last_tokens(), cache, prefix=search.prefix())  # (B*K, V)
            if grammar is not None:
                logits = grammar.constrain(logits, state)
            parents = search.step(torch.log_softmax(logits.float(), dim=-1))
            cache.reorder(parents, memory=False)  # beams move within their example: same memory
            if grammar is not None:
                state = grammar.advance(state[parents], search.last_tokens())
            if bool(search.done.all()):
                break
        return _cut_at_eos(search.finish(), model.eos_id)


class _BeamSearch:
    """The bookkeeping of a batched beam search: B examples x K beams, tensors on one device."""

    def __init__(self, model: Seq2Seq, batch: int, beam: int, max_len: int, length_penalty: float,
                 device: torch.device):
        self.k, self.lp, self.eos, self.bos = beam, length_penalty, model.eos_id, model.bos_id
        self.seqs = torch.empty(batch, beam, 0, dtype=torch.long, device=device)  # (B, K, t) live tokens
        self.sums = torch.full((batch, beam), float("-inf"), device=device)  # (B, K) sum of log p
        self.sums[:, 0] = 0.0  # all beams start equal: keep one so the first step picks distinct tokens
        self.best = torch.full((batch, max_len), self.eos, dtype=torch.long, device=device)  # finished
        self.best_score = torch.full((batch,), float("-inf"), device=device)
        self.done = torch.zeros(batch, dtype=torch.bool, device=device)

    def last_tokens(self) -> torch.Tensor:
        """The decoder inputs of this step, (B*K,)."""
        if self.seqs.shape[2] == 0:
            return torch.full((self.sums.numel(),), self.bos, dtype=torch.long, device=self.sums.device)
        return self.seqs[:, :, -1].reshape(-1)  # (B, K) -> (B*K,)

    def prefix(self) -> torch.Tensor:
        """Every decoder input of the live beams so far, <bos> first: (B*K, t+1)."""
        b, k, t = self.seqs.shape
        bos = torch.full((b * k, 1), self.bos, dtype=torch.long, device=self.seqs.device)
        return torch.cat([bos, self.seqs.reshape(b * k, t)], dim=1)

    def step(self, logp: torch.Tensor) -> torch.Tensor:
        """Advance with log-probs (B*K, V); return the cache rows (B*K,) the new beams come from."""
        b, k, t = self.seqs.shape[0], self.k, self.seqs.shape[2] + 1
        vocab = logp.shape[-1]
        cand = (self.sums[:, :, None] + logp.view(b, k, vocab)).view(b, k * vocab)  # (B, K*V)
        scores, index = cand.topk(2 * k, dim=1)  # (B, 2K), best first
        parent, token = index // vocab, index % vocab
        is_eos = token == self.eos
        self._record_finished(scores, parent, is_eos, t)
        keep = torch.sort(is_eos.to(torch.int8), dim=1, stable=True).indices[:, :k]  # first K non-eos
        parent, token = parent.gather(1, keep), token.gather(1, keep)  # (B, K)
        self.sums = scores.gather(1, keep)
        history = self.seqs.gather(1, parent[:, :, None].expand(-1, -1, t - 1))  # (B, K, t-1)
        self.seqs = torch.cat([history, token[:, :, None]], dim=2)  # (B, K, t)
        self.done |= self.best_score >= self.sums.max(dim=1).values / t ** self.lp
        return (torch.arange(b, device=parent.device)[:, None] * k + parent).view(-1)

    def _record_finished(self, scores, parent, is_eos, t: int) -> None:
        """Keep, per example not done, the best eos-ending candidate among the top K if it is better."""
        ranked = torch.arange(scores.shape[1], device=scores.device) < self.k  # (2K,)
        finished = torch.where(is_eos & ranked, scores / t ** self.lp, float("-inf"))
        score, pos = finished.max(dim=1)  # (B,)
        better = (score > self.best_score) & ~self.done
        if not bool(better.any()):
            return
        rows = better.nonzero().squeeze(1)
        source = parent[rows, pos[rows]]
        self.best[rows] = self.eos
        self.best[rows, : t - 1] = self.seqs[rows, source]
        self.best_score[rows] = score[rows]

    def finish(self) -> torch.Tensor:
        """(B, max_len) best token rows (eos-padded); live beams compete where not done."""
        t = self.seqs.shape[2]
        live = self.sums[:, 0] / max(t, 1) ** self.lp  # beams are sorted: beam 0 is the best live one
        take = ~self.done & (live > self.best_score)
        self.best[take, :t] = self.seqs[take, 0]
        return self.best
