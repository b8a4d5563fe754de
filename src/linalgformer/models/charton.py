"""The encoder-decoder transformer of Charton's "Linear algebra with transformers".

Source tokens (a matrix written as tokens) go through an encoder; a decoder, given ``<bos>`` and the
answer so far, predicts the next answer token with causal self-attention and cross-attention to the
encoder's output (the *memory*)::

    src (B, S) -> embed + positions -> [self-attn, FFN] x enc_layers -> memory (B, S, W)
    tgt_in (B, T) -> embed + positions -> [causal self-attn, cross-attn(memory), FFN] x dec_layers
                  -> linear read-out -> logits (B, T, V)

Choices, as in the paper: post-LayerNorm (``norm="post"``, with a LayerNorm on the embeddings as in
Charton's XLM-derived code) or pre-LayerNorm (``norm="pre"``, with a final LayerNorm instead);
learned positions, or sinusoidal ones (then token embeddings are scaled by sqrt(width), Vaswani et
al.'s recipe, so that they are not drowned by the positions); ReLU FFN of ``ffn_ratio * width``.
Softmax attention goes through :func:`linalgformer.models.attention.attention` (SDPA). Padding is
handled by a key-padding mask on the source (True = attend); the decoder needs none, because target
padding only ever sits after the tokens that matter and the causal mask hides it from them.

Initialisation (nanoGPT's, less one step): every Linear and Embedding weight ~ N(0, 0.02), biases
zero, LayerNorm weight one / bias zero. nanoGPT also scales the init of each residual output
projection by 1/sqrt(2 * layers); this model does not (changing the init would change every
trained result and bundled model).

``output_ids`` (optional) names the token ids an answer can contain (the output encoding's tokens,
the dimension tokens, the specials). Then the read-out computes logits for those rows of its weight
only: teacher-forcing logits are (B, T, K) over ``output_ids`` in that order (map targets with
:meth:`Seq2Seq.target_index`), and :meth:`Seq2Seq.decode_step` returns (B, V) logits with -inf
elsewhere, so decoding never emits an input-only token. With FP15 inputs (29,104 tokens) and a P1000
answer this removes almost all of the read-out's cost; the weights keep their full (V, W) shape, so
checkpoints do not depend on it.

``encoder_only=True`` drops the decoder: logits for output position i are read linearly from encoder
position i (the output must be no longer than the padded input).

Numbers by value (the ``continuous`` encoding, :mod:`linalgformer.models.number_values`): with
``num_id`` the source's ``<num>`` tokens also embed the values passed beside the ids (and with
``model.input_units: rows`` each row of each operand becomes one token, as it can for a token
input too: the row token sums its tokens' embeddings; ``lines``: each column as well, after the rows); with ``numbers_out`` the
token decoder and read-out are replaced by one query per answer entry and a linear read-out of one
number each (:meth:`Seq2Seq.regress`, reached through ``forward`` with ``shapes``). A gated FFN
(``model.ffn: swiglu | bilinear``) replaces the ReLU FFN in every block when asked.

Value loss (``model.value_loss``, token answers with matrix positions): ``entry_value``, one linear
map, reads from every answer token's decoder state the value of the answer entry that token writes
(``MatrixPositions.answer_entries``); the experiment adds its relative error to the cross-entropy.
Cross-entropy over 900 mantissa tokens gives no credit for being close; this gives a graded target
(docs/RESULTS.md section 3.6). Decoding does not use it.

Decoding (greedy, beam search) lives in :mod:`linalgformer.models.charton_decoding`; it uses
:meth:`Seq2Seq.start_cache` and :meth:`Seq2Seq.decode_step`, which run one new position at a time
against a :class:`DecoderCache` of past self-attention keys/values and the memory's cross-attention
keys/values (computed once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from linalgformer.config import FLAG, at_least, between, check_fields, greater_than, matching, one_of
from linalgformer.models.attention import KINDS as ATTENTION_KINDS
from linalgformer.models.attention import attention
from linalgformer.models.charton_parts import (
    EncoderReadOut,
    IndexPositions,
    MatrixScheme,
    NumberSlots,
    Outputs,
    RowSource,
    TokenDecoder,
    TokenSource,
)
from linalgformer.models.matrix_positions import MatrixLayout, MatrixPositions, PositionIds
from linalgformer.models.number_values import NUMBER_FEATURES, NumberValues, feature_count, number_features
from linalgformer.models.value_features import ValueFeatures

NORMS = ("post", "pre")
FFNS = ("relu", "swiglu", "bilinear")
INPUT_UNITS = ("entries", "rows", "lines")  # lines: a token per row and one per column of each operand
POSITIONS = ("learned", "sinusoidal", "matrix")
LOW_PRECISION = (torch.bfloat16, torch.float16)


@dataclass
class ModelConfig:
    """The ``model:`` section of a Charton run config."""

    enc_layers: int = 2
    dec_layers: int = 2
    width: int = 256
    heads: int = 8
    ffn_ratio: float = 4.0
    norm: str = "post"  # post | pre  (paper: post-LayerNorm)
    positions: str = "learned"  # learned | sinusoidal | matrix (operand, row, column, number slot)
    share_embeddings: bool = False  # tie encoder/decoder input embeddings and the output projection
    dropout: float = 0.0
    max_len: int = 1024  # positions table size: longest source, and longest decoder input
    encoder_only: bool = False  # encoder + linear read-out; output i read from encoder position i
    value_features: bool = False  # number tokens also embed (and read out) features of their value
    position_bias: bool = False  # matrix positions: each head learns a bias for keys sharing row/col/slot
    number_features: str = "auto"  # continuous input: auto | relative | absolute | xval (models/number_values.py)
    ffn: str = "relu"  # relu (paper) | swiglu | bilinear: gated FFNs multiply features (FeedForward)
    input_units: str = "entries"  # one input token per entry (per number token), or per row of each operand (matrix positions)
    value_loss: float = 0.0  # token answers: weight of an auxiliary loss, each answer token's state regresses its entry's value
    grammar: bool = False  # token answers: decoding picks only tokens a well-formed answer allows (answer_grammar.py)
    zero_gate: float = 0.0  # continuous answers: weight of a loss that learns which entries are exactly 0; read out as exact zeros
    zero_gate_limit: float = 0.1  # the gate zeroes only entries read out within this many units of 0 (0: all it finds zero)
    newton_steps: int = 0  # continuous inversion: the read-out is a first guess refined by this many Newton-Schulz steps
    sign_free: bool = False  # continuous eigenvectors / singular vectors: each vector's loss takes the sign nearer its target
    operand_units: bool = False  # continuous M^T v, A^T B: each operand read in units of its own largest entry
    loops: int = 0  # continuous answers: the decoder runs again this many times, reading its answer and adding a correction
    verifier_loss: float = 0.0  # continuous answers: weight of the verifiers' own d1 (the problem's checks, e.g. Q^T M Q) in the loss
    answer_views: int = 1  # continuous answers: by default the mean over this many invariant views of each question (--views)
    view_average: str = "mean"  # how the answers to the views combine: mean | median (entry by entry; robust to a view gone astray)
    # the encoder's self-attention: softmax | linear | relu, for every layer or one per layer ("linear,softmax,softmax,softmax");
    # linear attention writes sum_k (q_i . k_k) v_k: with row tokens, row i of A A^T in one layer
    encoder_attention: str = "softmax"

    def __post_init__(self):
        check_fields(self, MODEL_RULES)
        check_options(self)

    @property
    def ffn_width(self) -> int:
        return int(round(self.ffn_ratio * self.width))


VIEW_AVERAGES = ("mean", "median")  # model.view_average

MODEL_RULES = {
    "enc_layers": at_least(1), "dec_layers": at_least(0, " (0: encoder_only)"), "width": at_least(1),
    "heads": at_least(1), "ffn_ratio": greater_than(0.0), "norm": one_of(*NORMS), "positions": one_of(*POSITIONS),
    "share_embeddings": FLAG, "dropout": between(0.0, 1.0, high_open=True), "max_len": at_least(1),
    "encoder_only": FLAG, "value_features": FLAG, "position_bias": FLAG,
    "number_features": one_of(*NUMBER_FEATURES), "ffn": one_of(*FFNS), "input_units": one_of(*INPUT_UNITS),
    "value_loss": at_least(0.0), "grammar": FLAG, "zero_gate": at_least(0.0), "zero_gate_limit": at_least(0.0),
    "newton_steps": between(0, 64, integer=True), "sign_free": FLAG,
    "operand_units": FLAG, "loops": between(0, 64, integer=True), "verifier_loss": at_least(0.0),
    "answer_views": between(1, 64, integer=True), "view_average": one_of(*VIEW_AVERAGES),
    "encoder_attention": matching(rf"({'|'.join(ATTENTION_KINDS)})(,({'|'.join(ATTENTION_KINDS)}))*",
                                  f"{', '.join(ATTENTION_KINDS)}, or one per encoder layer separated by commas"),
}


def check_options(cfg: ModelConfig, numbers_in: bool = False, numbers_out: bool | None = None) -> None:
    """The rules of which options combine, stated once (ValueError). ``numbers_in`` / ``numbers_out``:
    the continuous encoding (numbers by value) on the input / the answer side (None: not known yet,
    as when the ``model:`` section is read alone). Each field's own
    range is :data:`MODEL_RULES`' (checked first, by ``ModelConfig``)."""
    matrix = cfg.positions == "matrix"
    needs = [(cfg.width % cfg.heads, f"width {cfg.width} must be divisible by heads {cfg.heads}"),
             (cfg.dec_layers < 1 and not cfg.encoder_only,
              f"dec_layers must be at least 1 for an encoder-decoder, got {cfg.dec_layers}"),
             (cfg.position_bias and not matrix, "model.position_bias needs model.positions=matrix (the ids it compares)"),
             (cfg.value_loss and (not matrix or cfg.encoder_only),
              "model.value_loss needs model.positions=matrix (which answer entry each token writes) and a decoder"),
             ((numbers_in or numbers_out) and not matrix,
              "the continuous encoding needs model.positions=matrix (its entries' places)"),
             (numbers_out and cfg.encoder_only, "a continuous answer needs a decoder (model.encoder_only=false)"),
             (cfg.value_loss and numbers_out,
              "model.value_loss is for token answers: a continuous answer is read out as values already"),
             (cfg.zero_gate and numbers_out is False,
              "model.zero_gate is for a continuous answer (numbers read out by value): tokens write an exact 0 already"),
             (cfg.sign_free and numbers_out is False,
              "model.sign_free is for a continuous answer (numbers read out by value): a token answer is scored token by token"),
             (cfg.operand_units and numbers_out is not None and not (numbers_in and numbers_out),
              "model.operand_units reads each operand by value in its own units (the continuous encoding on both sides)"),
             (cfg.loops and numbers_out is False,
              "model.loops refines a continuous answer (numbers read out by value): a token answer is written once"),
             (cfg.verifier_loss and numbers_out is not None and not (numbers_in and numbers_out),
              "model.verifier_loss checks a continuous answer against a continuous question (the continuous encoding on both sides)"),
             (cfg.answer_views > 1 and numbers_out is False,
              "model.answer_views averages continuous answers (numbers read out by value): a token answer is written once"),
             (cfg.newton_steps and numbers_out is not None and not (numbers_in and numbers_out),
              "model.newton_steps refines a continuous answer against a continuous question (the continuous encoding on both sides)"),
             (len(cfg.encoder_attention.split(",")) not in (1, cfg.enc_layers),
              f"model.encoder_attention names {len(cfg.encoder_attention.split(','))} kinds for {cfg.enc_layers} encoder layers "
              "(one for all, or one per layer)"),
             (cfg.input_units in ("rows", "lines") and not matrix,
              f"model.input_units={cfg.input_units} needs model.positions=matrix (which row each token is in)")]
    for broken, message in needs:
        if broken:
            raise ValueError(message)


def encoder_kinds(cfg: ModelConfig) -> list[str]:
    """The attention kind of each encoder layer (``model.encoder_attention``)."""
    kinds = cfg.encoder_attention.split(",")
    return kinds * cfg.enc_layers if len(kinds) == 1 else kinds


def number_features_of(cfg: ModelConfig, numbers_out: bool) -> str:
    """``model.number_features`` with ``auto`` resolved: relative for a continuous answer, else absolute."""
    if cfg.number_features != "auto":
        return cfg.number_features
    return "relative" if numbers_out else "absolute"


# ----------------------------------------------------------------------------------------- blocks

class Attention(nn.Module):
    """Multi-head softmax attention whose key/value projection can be run (and cached) separately.

    ``fp32_cpu_attention`` (an instance attribute, on by default; ``benchmarks/train.py --ablate``
    turns it off to measure what it buys): when autocast hands the attention bf16/fp16 inputs on
    the CPU and gradients are needed, the attention itself runs in float32 while the projections
    stay in bf16. torch's CPU flash-attention backward is much slower in bf16 than in fp32 (see
    docs/PERFORMANCE.md for the measured step) and its query gradients are far less accurate
    (``tests/test_seq2seq_speed_paths.py``). Parameters and checkpoints are unchanged.
    """

    fp32_cpu_attention = True

    def __init__(self, width: int, heads: int, dropout: float, kind: str = "softmax"):
        super().__init__()
        self.heads, self.dropout, self.kind = heads, dropout, kind
        self.q_proj = nn.Linear(width, width)
        self.kv_proj = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, width)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape  # (B, T, W) -> (B, H, T, W/H)
        return x.view(b, t, self.heads, w // self.heads).transpose(1, 2)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``context`` (B, S, W), each (B, H, S, W/H)."""
        k, v = self.kv_proj(context).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], *,
                mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """Queries from ``x`` (B, T, W) against keys/values (B, H, S, W/H) -> (B, T, W)."""
        q, (k, v) = self.split(self.q_proj(x)), kv
        dropout = self.dropout if self.training else 0.0
        if mask is not None and mask.dtype != torch.bool:  # an additive bias (structural bias + padding)
            mask = mask.to(torch.float32 if q.device.type == "cpu" and q.requires_grad else q.dtype)
        if self.kind != "softmax":
            out = unnormalised_attention(q, k, v, self.kind, mask, causal, dropout)
        elif self.fp32_cpu_attention and q.requires_grad and q.device.type == "cpu" and q.dtype in LOW_PRECISION:
            with torch.autocast("cpu", enabled=False):
                out = attention(q.float(), k.float(), v.float(), "softmax", mask=mask, causal=causal,
                                dropout=dropout).to(q.dtype)
        else:
            out = attention(q, k, v, "softmax", mask=mask, causal=causal, dropout=dropout)  # (B, H, T, W/H)
        b, h, t, dh = out.shape  # (B, H, T, W/H) -> (B, T, W)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, h * dh))


def unnormalised_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str,
                           mask: torch.Tensor | None, causal: bool, dropout: float) -> torch.Tensor:
    """Linear or ReLU attention (``model.encoder_attention``), scores q.k / sqrt(dh) averaged over
    the keys; an additive mask (padding at -inf, the structural bias) becomes a key mask and a bias."""
    keep, bias = mask, None
    if mask is not None and mask.dtype != torch.bool:
        keep = torch.isfinite(mask)
        bias = mask.masked_fill(~keep, 0.0)
    return attention(q, k, v, kind, mask=keep, bias=bias, causal=causal, normalize=True,
                     scale=q.shape[-1] ** -0.5, dropout=dropout)


class FeedForward(nn.Module):
    """``down(relu(up(x)))``, the paper's FFN (``model.ffn: relu``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.width, cfg.ffn_width)
        self.down = nn.Linear(cfg.ffn_width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


class GatedFeedForward(FeedForward):
    """A gated unit ``down(act(up(x)) * gate(x))``: ``swiglu`` (act = SiLU, Shazeer 2020) or
    ``bilinear`` (no activation: a pure product of two projections). It multiplies features of its
    input, so that a product of two inputs (the sign of x * y is the XOR of their signs) is one
    layer's linear read-out rather than a function a ReLU layer must approximate; it has 1.5x the
    FFN parameters at equal ``ffn_ratio``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.gate = nn.Linear(cfg.width, cfg.ffn_width)
        self.act = nn.SiLU() if cfg.ffn == "swiglu" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)) * self.gate(x))


def feed_forward(cfg: ModelConfig) -> FeedForward:
    return FeedForward(cfg) if cfg.ffn == "relu" else GatedFeedForward(cfg)


class Residual(nn.Module):
    """``x + f(x)`` with a LayerNorm after (post-norm) or before f (pre-norm), dropout on f(x)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre = cfg.norm == "pre"
        self.norm = nn.LayerNorm(cfg.width)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.pre:
            return x + self.drop(f(self.norm(x)))
        return self.norm(x + self.drop(f(x)))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, kind: str = "softmax"):
        super().__init__()
        self.attn = Attention(cfg.width, cfg.heads, cfg.dropout, kind)
        self.ffn = feed_forward(cfg)
        self.attn_res, self.ffn_res = Residual(cfg), Residual(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attn_res(x, lambda h: self.attn(h, self.attn.project_kv(h), mask=mask))
        return self.ffn_res(x, self.ffn)


@dataclass
class DecoderCache:
    """What incremental decoding keeps between steps, per decoder layer.

    ``cross[l]``: the memory's cross-attention keys/values for layer l, each (B, H, S, W/H), computed
    once; ``past[l]``: layer l's self-attention keys/values of the positions decoded so far, each
    (B, H, t, W/H) (None before the first step); ``mem_mask``: (B, 1, 1, S) key padding mask;
    ``length``: t, the number of positions decoded so far (the next one's position index).
    """

    cross: list[tuple[torch.Tensor, torch.Tensor]]
    mem_mask: torch.Tensor
    past: list[tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=list)
    length: int = 0
    source: PositionIds | None = None  # the source's matrix position ids, for the structural bias

    def reorder(self, index: torch.Tensor, memory: bool = True) -> None:
        """Keep rows ``index`` (a LongTensor over the batch), e.g. to repeat rows or follow beams.

        ``memory=False`` leaves the memory's keys/values and mask in place: right when rows only move
        among copies of the same source (the beams of one example), and it saves a copy per step."""
        self.past = [None if kv is None else (kv[0][index], kv[1][index]) for kv in self.past]
        if memory:
            self.cross = [(k[index], v[index]) for k, v in self.cross]
            self.mem_mask = self.mem_mask[index]
            self.source = None if self.source is None else self.source.rows(index)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.self_attn = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.cross_attn = Attention(cfg.width, cfg.heads, cfg.dropout)
        self.ffn = feed_forward(cfg)
        self.self_res, self.cross_res, self.ffn_res = Residual(cfg), Residual(cfg), Residual(cfg)

    def forward(self, x: torch.Tensor, cross_kv: tuple[torch.Tensor, torch.Tensor], mem_mask: torch.Tensor,
                cache: DecoderCache | None = None, layer: int = 0, self_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, W). With ``cache``, x holds only new positions, appended to ``cache.past[layer]``.
        ``self_mask`` (key mask, True = attend) makes the self-attention bidirectional (answer slots)."""
        causal = cache is None and self_mask is None
        x = self.self_res(x, lambda h: self.self_attn(h, self._self_kv(h, cache, layer), mask=self_mask, causal=causal))
        x = self.cross_res(x, lambda h: self.cross_attn(h, cross_kv, mask=mem_mask))
        return self.ffn_res(x, self.ffn)

    def _self_kv(self, h: torch.Tensor, cache: DecoderCache | None, layer: int):
        kv = self.self_attn.project_kv(h)
        if cache is None:
            return kv
        past = cache.past[layer]
        if past is not None:  # (B, H, t, dh) + (B, H, 1, dh) -> (B, H, t+1, dh)
            kv = (torch.cat([past[0], kv[0]], dim=2), torch.cat([past[1], kv[1]], dim=2))
        cache.past[layer] = kv
        return kv


def sinusoidal_table(length: int, width: int) -> torch.Tensor:
    """(length, width): sin on even dimensions, cos on odd ones, wavelengths 2pi .. 10000*2pi."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : width // 2]
    return table


class Embedding(nn.Module):
    """Token embedding + positions (+ LayerNorm for post-norm models), then dropout.

    Matrix-aware positions are computed by the model (they need the whole sequence) and handed
    in as ``pos_emb``; the other kinds are looked up here by index."""

    def __init__(self, cfg: ModelConfig, tokens: nn.Embedding):
        super().__init__()
        self.tokens = tokens
        self.learned = cfg.positions == "learned"
        self.scale = math.sqrt(cfg.width) if cfg.positions == "sinusoidal" else 1.0
        if self.learned:
            self.positions = nn.Embedding(cfg.max_len, cfg.width)
        elif cfg.positions == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(cfg.max_len, cfg.width), persistent=False)
        self.norm = nn.LayerNorm(cfg.width) if cfg.norm == "post" else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)
        self.max_len = cfg.max_len

    def forward(self, ids: torch.Tensor, start: int = 0, pos_emb: torch.Tensor | None = None,
                value_emb: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, T) at positions start..start+T-1 (or with matrix positions ``pos_emb`` (B, T, W))
        -> (B, T, W); ``value_emb`` (B, T, W), the value features' part, joins the token's."""
        end = start + ids.shape[1]
        if end > self.max_len:
            raise ValueError(f"sequence of {end} positions is longer than the model's max_len {self.max_len}")
        if pos_emb is None:
            pos = torch.arange(start, end, device=ids.device)
            pos_emb = self.positions(pos) if self.learned else self.table[start:end]
        tokens = self.tokens(ids) if value_emb is None else self.tokens(ids) + value_emb
        return self.drop(self.norm(tokens * self.scale + pos_emb))


# ------------------------------------------------------------------------------------------ model

def read_out_index(ids: list[int], vocab_size: int) -> torch.Tensor:
    """(vocab_size,) token id -> its row among the read-out ``ids`` (sorted), -1 for the others."""
    index = torch.full((vocab_size,), -1, dtype=torch.long)
    index[torch.tensor(ids, dtype=torch.long)] = torch.arange(len(ids))
    return index


class Seq2Seq(nn.Module):
    """Encoder-decoder (or encoder-only) transformer over token ids; see the module docstring.

    Built from parts (:mod:`linalgformer.models.charton_parts`), each picked once here: a position
    scheme, a source embedder and an answer head. ``num_id``: the input's ``<num>`` token, whose
    value is embedded (a continuous input); ``numbers_out``: the answer is read out as numbers."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                 output_ids: list[int] | None = None, layout: MatrixLayout | None = None,
                 token_values=None, num_id: int | None = None, numbers_out: bool = False):
        super().__init__()
        check_options(cfg, numbers_in=num_id is not None, numbers_out=numbers_out)
        for name, tok in (("pad_id", pad_id), ("bos_id", bos_id), ("eos_id", eos_id)):
            if not 0 <= tok < vocab_size:
                raise ValueError(f"{name} {tok} is outside the vocabulary of {vocab_size} tokens")
        self.num_id, self.numbers_out = num_id, numbers_out
        self.register_output_ids(vocab_size, eos_id, output_ids)
        self.cfg, self.vocab_size = cfg, vocab_size
        self.loops = cfg.loops  # passes of refinement after the first (settable at inference: lf.Model.loops)
        self.zero_gate_limit = cfg.zero_gate_limit  # settable at inference: lf.Model.zero_gate_limit
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        # the modules are made (and registered) in the order checkpoints and seeds have always seen
        self.position_scheme = self._build_positions(cfg, layout)
        self._build_value_parts(cfg, vocab_size, token_values, num_id, numbers_out)
        self.source_embedder = self._build_source(cfg, layout, vocab_size)
        self.encoder = nn.ModuleList(EncoderLayer(cfg, kind) for kind in encoder_kinds(cfg))
        self.enc_norm = nn.LayerNorm(cfg.width) if cfg.norm == "pre" else nn.Identity()
        self.answer_head = self._build_answer(cfg, vocab_size, numbers_out)
        self._init_parameters(cfg, numbers_out)

    def _build_positions(self, cfg: ModelConfig, layout: MatrixLayout | None) -> IndexPositions | MatrixScheme:
        if cfg.positions != "matrix":
            return IndexPositions()
        if layout is None:
            raise ValueError("matrix positions need the problem's matrix layout")
        self.matrix_positions = MatrixPositions(cfg.width, layout, cfg.heads if cfg.position_bias else 0)
        return MatrixScheme(self.matrix_positions, cfg.position_bias)

    def _build_value_parts(self, cfg: ModelConfig, vocab_size: int, token_values, num_id: int | None,
                           numbers_out: bool) -> None:
        """The value features of number tokens (``model.value_features``) and the embedding of
        numbers by value (a continuous input), as the value parts of the source embedding."""
        self.values: ValueFeatures | None = None
        self.numbers: NumberValues | None = None
        if cfg.value_features:
            if token_values is None or len(token_values) != vocab_size:
                raise ValueError("value features need the value each vocabulary token writes")
            self.values = ValueFeatures(cfg.width, token_values)
        if num_id is not None:
            self.numbers = NumberValues(cfg.width, number_features_of(cfg, numbers_out))

    def _build_source(self, cfg: ModelConfig, layout: MatrixLayout | None, vocab_size: int) -> TokenSource | RowSource:
        if cfg.input_units in ("rows", "lines"):  # an entry (its value, or its tokens), gated by its column, is summed into its row's token
            self.column_gate = nn.Embedding(layout.max_dim + 1, cfg.width)
        if cfg.input_units == "lines":  # ...and, gated by its row, into its column's token
            self.row_gate = nn.Embedding(layout.max_dim + 1, cfg.width)
        self.src_embed = Embedding(cfg, nn.Embedding(vocab_size, cfg.width))
        if cfg.input_units in ("rows", "lines"):
            return RowSource(self.src_embed, self.position_scheme, self.source_value_embedding, self.column_gate,
                             self.num_id, getattr(self, "row_gate", None))
        return TokenSource(self.src_embed, self.position_scheme, self.source_value_embedding)

    def _build_answer(self, cfg: ModelConfig, vocab_size: int, numbers_out: bool):
        def decoder() -> None:
            self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
            self.dec_norm = nn.LayerNorm(cfg.width) if cfg.norm == "pre" else nn.Identity()
        if numbers_out:
            self.answer_query = nn.Parameter(torch.zeros(cfg.width))
            self.slot_norm = nn.LayerNorm(cfg.width) if cfg.norm == "post" else nn.Identity()
            decoder()
            self.value_head = nn.Linear(cfg.width, 1)
            if cfg.zero_gate:  # one logit per answer entry: is it exactly zero?
                self.zero_head = nn.Linear(cfg.width, 1)
            if cfg.loops:  # the current answer read back into each slot, and the correction it gets
                self.answer_in = nn.Linear(feature_count("relative") + 1, cfg.width, bias=False)
                self.correction_head = nn.Linear(cfg.width, 1)
            return NumberSlots()
        if not cfg.encoder_only:
            tokens = self.src_embed.tokens if cfg.share_embeddings else nn.Embedding(vocab_size, cfg.width)
            self.tgt_embed = Embedding(cfg, tokens)
            decoder()
        self.head = nn.Linear(cfg.width, vocab_size)
        if cfg.value_loss:  # the auxiliary read-out of each answer token's entry value
            self.entry_value = nn.Linear(cfg.width, 1)
        return EncoderReadOut() if cfg.encoder_only else TokenDecoder()

    def _init_parameters(self, cfg: ModelConfig, numbers_out: bool) -> None:
        self.apply(self._init_weights)
        if numbers_out:
            nn.init.normal_(self.answer_query, std=0.02)
        if numbers_out and cfg.zero_gate:
            nn.init.constant_(self.zero_head.bias, -2.0)  # closed at first: no entry is zeroed before it learns
        if numbers_out and cfg.loops:  # a loop starts by changing nothing: the model is the one-pass model
            nn.init.zeros_(self.answer_in.weight)
            nn.init.zeros_(self.correction_head.weight)
            nn.init.zeros_(self.correction_head.bias)
        if cfg.input_units in ("rows", "lines"):
            nn.init.normal_(self.column_gate.weight, std=1.0)  # columns told apart from the start
        if cfg.input_units == "lines":
            nn.init.normal_(self.row_gate.weight, std=1.0)
        if cfg.share_embeddings and not numbers_out:
            self.head.weight = self.src_embed.tokens.weight

    def register_output_ids(self, vocab_size: int, eos_id: int, output_ids: list[int] | None) -> None:
        """Buffers (not saved: derived from the vocabulary) for the read-out's rows and their inverse."""
        ids = sorted(set(range(vocab_size) if output_ids is None else output_ids))
        if ids[0] < 0 or ids[-1] >= vocab_size or eos_id not in ids:
            raise ValueError("output_ids must lie in the vocabulary and include <eos>")
        self.restricted = len(ids) < vocab_size
        self.register_buffer("output_ids", torch.tensor(ids, dtype=torch.long), persistent=False)
        self.register_buffer("output_index", read_out_index(ids, vocab_size), persistent=False)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(..., W) -> (..., K): the read-out over ``output_ids`` (all V tokens when unrestricted)."""
        if not self.restricted and self.values is None:
            return self.head(h)
        bias = None if self.head.bias is None else self.head.bias[self.output_ids]
        weight = self.head.weight[self.output_ids]
        if self.values is not None:
            weight = weight + self.values.read_out_rows(self.output_ids)
        return nn.functional.linear(h, weight, bias)

    def value_embedding(self, ids: torch.Tensor) -> torch.Tensor | None:
        """The value features' part of the embeddings of ``ids`` (None without value features)."""
        return None if self.values is None else self.values.embedding(ids)

    def source_value_embedding(self, src: torch.Tensor, values: torch.Tensor | None) -> torch.Tensor | None:
        """The value features' part plus, for a continuous input, the embedding of each number's value."""
        out = self.value_embedding(src)
        if self.numbers is None:
            return out
        if values is None or values.shape != src.shape:
            raise ValueError("a model with a continuous input needs the values beside the <num> tokens")
        numbers = self.numbers(values.to(src.device), src == self.num_id)
        return numbers if out is None else out + numbers

    def target_index(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> positions in ``output_ids`` (the class index of a teacher-forcing logit); -1
        for a token an answer cannot contain."""
        return self.output_index[ids]

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    # -------------------------------------------------------------------------- teacher forcing

    def encode(self, src: torch.Tensor, src_len: torch.Tensor,
               values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S), src_len (B,) -> memory (B, M, W), key padding mask (B, 1, 1, M) (True = real);
        M = S, or the number of rows with ``input_units: rows``. ``values`` (B, S): the numbers of a
        continuous input (``<num>`` positions)."""
        s = src.shape[1]
        mask = torch.arange(s, device=src.device)[None, :] < src_len.to(src.device)[:, None]  # (B, S)
        mask = mask[:, None, None, :]  # (B, S) -> (B, 1, 1, S): broadcast over heads and queries
        x, ids, mask = self.source_embedder(src, values, mask)
        self_mask = self.position_scheme.bias(ids, ids, mask)
        for layer in self.encoder:
            x = layer(x, self_mask)
        return self.enc_norm(x), mask

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor | None = None,
                values: torch.Tensor | None = None, shapes: torch.Tensor | None = None,
                entry_values: bool = False) -> Outputs:
        """Teacher forcing, for every kind of model: :class:`Outputs`. Token answers: ``logits``
        (B, T, K) over ``output_ids`` (K = V unless restricted), position i predicting the token after
        tgt_in[:, i] (encoder-only models read position i from encoder position i and ignore
        tgt_in's values); ``entry_values`` adds the auxiliary read-out of ``model.value_loss``. A
        continuous answer: ``numbers`` (B, P) for the answers' ``shapes`` (B, 2). ``values``: a
        continuous input's numbers. (Everything goes through ``forward`` so that
        DistributedDataParallel sees the call.)"""
        memory, mask = self.encode(src, src_len, values)
        return self.answer_head(self, memory, mask, src, tgt_in, shapes, entry_values)

    def decoder_states(self, tgt_in: torch.Tensor, memory: torch.Tensor, mem_mask: torch.Tensor,
                       src: torch.Tensor | None = None) -> torch.Tensor:
        """All decoder positions at once (causal): tgt_in (B, T) -> final states (B, T, W). ``src``
        (the source ids) is needed with ``position_bias``."""
        ids = self.position_scheme.target(tgt_in)
        x = self.tgt_embed(tgt_in, pos_emb=self.position_scheme.embed(ids), value_emb=self.value_embedding(tgt_in))
        mem_mask = self.position_scheme.memory_bias(ids, lambda: self._source_ids(src), mem_mask)
        for layer in self.decoder:
            x = layer(x, layer.cross_attn.project_kv(memory), mem_mask)
        return self.dec_norm(x)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, mem_mask: torch.Tensor,
               src: torch.Tensor | None = None) -> torch.Tensor:
        """All positions at once (causal): tgt_in (B, T) -> logits (B, T, K) over ``output_ids``."""
        return self.logits(self.decoder_states(tgt_in, memory, mem_mask, src))

    def memory_ids(self, src: torch.Tensor) -> PositionIds:
        """The matrix position ids of the memory's tokens (entries, or rows with ``input_units: rows``)."""
        return self.source_embedder.memory_ids(src)

    def _source_ids(self, src: torch.Tensor | None) -> PositionIds:
        if src is None:
            raise ValueError("a model with model.position_bias needs the source ids to decode")
        return self.memory_ids(src)

    def answer_slots(self, shapes: torch.Tensor) -> tuple[PositionIds, torch.Tensor]:
        """(B, 2) answer shapes -> the matrix position ids of each answer entry, row-major, (B, P)
        each, and (B, P) which slots exist (P: the largest answer)."""
        rows, cols = shapes[:, :1].long(), shapes[:, 1:].long()
        sizes = rows * cols
        index = torch.arange(int(sizes.max()), device=shapes.device)[None, :].expand(len(shapes), -1)
        real = index < sizes
        return self.matrix_positions.answer(index // cols, index % cols, real), real

    def number_slots(self, memory: torch.Tensor, mem_mask: torch.Tensor, src: torch.Tensor,
                     shapes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A continuous answer: (B, P) numbers, one per entry of each answer (row-major; ``shapes``
        (B, 2) their rows and columns; 0 beyond an answer's last entry), in units of max|input|**d;
        and with ``model.zero_gate`` (B, P) logits that each entry is exactly zero (else None)."""
        ids, real = self.answer_slots(shapes.to(memory.device))
        slots = self.slot_norm(self.answer_query + self.matrix_positions.embed(ids))
        mem_mask = self.position_scheme.memory_bias(ids, lambda: self.memory_ids(src), mem_mask)
        kv = [layer.cross_attn.project_kv(memory) for layer in self.decoder]

        def answer_pass(x: torch.Tensor) -> torch.Tensor:
            for layer, layer_kv in zip(self.decoder, kv):
                x = layer(x, layer_kv, mem_mask, self_mask=real[:, None, None, :])
            return self.dec_norm(x)

        h = answer_pass(slots)
        numbers = self.value_head(h)[..., 0].float().masked_fill(~real, 0.0)
        for _ in range(self.loops):  # model.loops: read the answer so far, add a correction (weights shared)
            features = number_features(numbers.detach().masked_fill(~real, 0.0))  # its sign, decades, phases
            seen = torch.cat([numbers[..., None], features], dim=-1)
            h = answer_pass(slots + self.answer_in(seen.to(slots.dtype)))
            numbers = numbers + self.correction_head(h)[..., 0].float().masked_fill(~real, 0.0)
        if not self.cfg.zero_gate:
            return numbers, None
        return numbers, self.zero_head(h)[..., 0].float().masked_fill(~real, -1e4)

    def regress(self, src: torch.Tensor, src_len: torch.Tensor, shapes: torch.Tensor,
                values: torch.Tensor | None = None) -> torch.Tensor:
        """A continuous answer's numbers (B, P): ``forward(...).numbers``, with the entries the zero
        gate (``model.zero_gate``) finds more likely zero than not written as exact zeros, where the
        number read out agrees: within ``zero_gate_limit`` units of 0 (0: wherever the gate says).
        A gate that errs can then move an entry by at most the limit, never zero a large one."""
        out = self(src, src_len, values=values, shapes=shapes)
        if out.zero_logits is None:
            return out.numbers
        zero = out.zero_logits > 0
        if self.zero_gate_limit > 0:
            zero = zero & (out.numbers.abs() < self.zero_gate_limit)
        return out.numbers.masked_fill(zero, 0.0)

    def read_out(self, memory: torch.Tensor, length: int) -> torch.Tensor:
        """Encoder-only: logits (B, length, K) from encoder positions 0..length-1."""
        if length > memory.shape[1]:
            raise ValueError(f"an encoder-only model cannot write {length} output tokens "
                             f"from {memory.shape[1]} input positions; pad the input to the output length")
        return self.logits(memory[:, :length])

    # ------------------------------------------------------------------------- one step at a time

    def start_cache(self, memory: torch.Tensor, mem_mask: torch.Tensor,
                    src: torch.Tensor | None = None) -> DecoderCache:
        """An empty cache holding each decoder layer's cross-attention keys/values of ``memory``
        (and, with ``position_bias``, the matrix position ids of ``src``)."""
        cross = [layer.cross_attn.project_kv(memory) for layer in self.decoder]
        source = self.position_scheme.bias_keys(lambda: self._source_ids(src))
        return DecoderCache(cross=cross, mem_mask=mem_mask, past=[None] * len(self.decoder), source=source)

    def decode_step(self, tokens: torch.Tensor, cache: DecoderCache,
                    prefix: torch.Tensor | None = None) -> torch.Tensor:
        """The newest decoder input tokens (B,) at position cache.length -> next-token logits (B, V).

        ``prefix`` (B, cache.length + 1): every decoder input so far, <bos> first and ``tokens``
        last; matrix positions read their ids off it (other positions ignore it)."""
        ids = self.position_scheme.step(prefix, cache.length)
        mem_mask = self.position_scheme.memory_bias(ids, lambda: cache.source, cache.mem_mask)
        x = self.tgt_embed(tokens[:, None], start=cache.length, pos_emb=self.position_scheme.embed(ids),
                           value_emb=self.value_embedding(tokens[:, None]))  # (B,) -> (B, 1, W)
        for i, layer in enumerate(self.decoder):
            x = layer(x, cache.cross[i], mem_mask, cache=cache, layer=i)
        cache.length += 1
        return self.to_vocab(self.logits(self.dec_norm(x))[:, 0])

    def to_vocab(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits over ``output_ids`` (..., K) -> over the whole vocabulary (..., V), -inf elsewhere."""
        if not self.restricted:
            return logits
        full = logits.new_full((*logits.shape[:-1], self.vocab_size), float("-inf"))
        return full.index_copy_(-1, self.output_ids, logits)

    # ------------------------------------------------------------------------------------ costs

    def flops_per_example(self, src_len: int, tgt_len: int, training: bool = True) -> int:
        """Matmul FLOPs of one example (forward, x3 for forward + backward when ``training``).

        Each weight matrix costs 2 FLOPs per parameter per token it touches; attention adds
        2 * 2 * Tq * Tk * W per layer (scores and weighted sum; causal masks not discounted, as in
        the PaLM/nanoGPT MFU estimate). Embeddings, norms and softmax are not counted.
        """
        w, f, s, t = self.cfg.width, self.cfg.ffn_width, src_len, tgt_len
        block = 4 * w * w + (2 if self.cfg.ffn == "relu" else 3) * w * f  # attention q, k, v, o + FFN weights
        flops = self.cfg.enc_layers * (2 * block * s + 4 * s * s * w)
        if not self.cfg.encoder_only:
            per_dec = 2 * block * t + 2 * (2 * w * w) * t + 2 * (2 * w * w) * s  # self+FFN, cross q/o, cross k/v
            flops += self.cfg.dec_layers * (per_dec + 4 * t * t * w + 4 * t * s * w)
        flops += 2 * w * (1 if self.numbers_out else len(self.output_ids)) * t  # read-out
        return 3 * flops if training else flops
