"""The Charton seq2seq transformer and its decoding: tiny models, CPU, a few seconds in all."""

from __future__ import annotations

import math

import pytest
import torch

from linalgformer.models.charton_decoding import beam_search, greedy
from linalgformer.models.charton import ModelConfig, Seq2Seq

PAD, BOS, EOS, VOCAB = 0, 1, 2, 20
VARIANTS = {
    "post-learned": {},
    "pre-norm": {"norm": "pre"},
    "sinusoidal": {"positions": "sinusoidal"},
    "shared-embeddings": {"share_embeddings": True},
    "pre-sinusoidal-shared": {"norm": "pre", "positions": "sinusoidal", "share_embeddings": True},
    "swiglu": {"ffn": "swiglu"},
    "pre-bilinear": {"norm": "pre", "ffn": "bilinear"},
}


def tiny(seed: int = 0, eos_bias: float = 0.0, **overrides) -> Seq2Seq:
    """A width-32 model with weights large enough that outputs depend on the input (N(0, 2/fan_in)).

    The default 0.02 init makes a random model nearly input-independent, which would let tests of
    masking or caching pass vacuously."""
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"enc_layers": 1, "dec_layers": 2, "width": 32, "heads": 4, "max_len": 40, **overrides})
    model = Seq2Seq(cfg, VOCAB, PAD, BOS, EOS)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, math.sqrt(2.0 / p.shape[1]))
        model.head.bias[EOS] = eos_bias
    return model.eval()


def sources(seed: int, batch: int = 6, length: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sources with variable lengths 1..length, padded with random (non-pad) junk."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, VOCAB, (batch, length), generator=g)
    src_len = torch.randint(1, length + 1, (batch,), generator=g)
    src_len[0] = length
    return src, src_len


# ----------------------------------------------------------------------------------- the model

def test_shapes_and_counts():
    model = tiny()
    src, src_len = sources(0)
    tgt_in = torch.randint(3, VOCAB, (6, 5))
    assert model(src, src_len, tgt_in).logits.shape == (6, 5, VOCAB)
    memory, mask = model.encode(src, src_len)
    assert memory.shape == (6, 7, 32) and mask.shape == (6, 1, 1, 7) and mask.dtype == torch.bool
    assert mask[:, 0, 0].sum(1).tolist() == src_len.tolist()
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    shared = tiny(share_embeddings=True)
    assert shared.head.weight is shared.src_embed.tokens.weight is shared.tgt_embed.tokens.weight
    assert shared.num_parameters() == model.num_parameters() - 2 * VOCAB * 32


@pytest.mark.parametrize("bad, message", [
    ({"width": 30, "heads": 4}, "divisible"),
    ({"norm": "middle"}, "norm"),
    ({"positions": "rotary"}, "positions"),
    ({"dec_layers": 0}, "dec_layers"),
    ({"dropout": 1.5}, "dropout"),
    ({"ffn": "gelu"}, "ffn"),
])
def test_config_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**bad)
    ModelConfig(dec_layers=0, encoder_only=True)  # an encoder-only model needs no decoder


@pytest.mark.parametrize("ffn", ["relu", "swiglu", "bilinear"])
def test_flops_match_a_count_of_every_matmul(ffn):
    model = tiny(enc_layers=2, dec_layers=1, ffn=ffn)
    counted = []
    hooks = [m.register_forward_hook(lambda m, i, o: counted.append(2 * i[0].shape[:-1].numel() * m.weight.numel()))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    s, t, w = 7, 5, 32
    model(torch.randint(3, VOCAB, (1, s)), torch.tensor([s]), torch.randint(3, VOCAB, (1, t)))
    for h in hooks:
        h.remove()
    attention = 2 * 4 * s * s * w + 1 * (4 * t * t * w + 4 * t * s * w)
    assert model.flops_per_example(s, t, training=False) == sum(counted) + attention
    assert model.flops_per_example(s, t) == 3 * (sum(counted) + attention)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_does_not_change_logits(variant):
    model = tiny(**VARIANTS[variant])
    src, src_len = sources(1)
    tgt_in = torch.randint(3, VOCAB, (6, 4))
    batched = model(src, src_len, tgt_in).logits
    for i in range(6):
        alone = model(src[i:i + 1, :src_len[i]], src_len[i:i + 1], tgt_in[i:i + 1]).logits
        torch.testing.assert_close(batched[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    changed = src.clone()
    changed[:, 0] = (changed[:, 0] + 1 - 3) % (VOCAB - 3) + 3  # a real token: must matter
    assert not torch.allclose(model(changed, src_len, tgt_in).logits, batched, atol=1e-3)


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoder_is_causal(variant):
    model = tiny(**VARIANTS[variant])
    src, src_len = sources(2)
    tgt_in = torch.randint(3, VOCAB, (6, 6))
    future = tgt_in.clone()
    future[:, 3:] = torch.randint(3, VOCAB, (6, 3))
    before, after = model(src, src_len, tgt_in).logits, model(src, src_len, future).logits
    torch.testing.assert_close(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:], atol=1e-3)


def test_encoder_only_reads_position_i():
    model = tiny(encoder_only=True, dec_layers=0)
    src, src_len = sources(3)
    logits = model(src, src_len, torch.full((6, 4), BOS)).logits
    memory, _ = model.encode(src, src_len)
    torch.testing.assert_close(logits, model.head(memory[:, :4]))
    with pytest.raises(ValueError, match="encoder-only"):
        model(src, src_len, torch.full((6, 8), BOS))
    outputs = greedy(model, src, src_len, max_len=5)
    assert all(len(o) <= 5 and EOS not in o for o in outputs)
    assert beam_search(model, src, src_len, max_len=5) == outputs


# ---------------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_step_logits_equal_full_decoder(variant):
    model = tiny(**VARIANTS[variant])
    src, src_len = sources(4)
    tgt_in = torch.cat([torch.full((6, 1), BOS), torch.randint(3, VOCAB, (6, 7))], dim=1)
    with torch.no_grad():
        memory, mask = model.encode(src, src_len)
        full = model.decode(tgt_in, memory, mask)
        cache = model.start_cache(memory, mask)
        steps = torch.stack([model.decode_step(tgt_in[:, i], cache) for i in range(8)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("variant", ["post-learned", "pre-sinusoidal-shared"])
def test_greedy_with_cache_equals_without(seed, variant):
    model = tiny(seed, eos_bias=1.0, **VARIANTS[variant])  # some rows end early, most run 30 steps
    src, src_len = sources(seed, batch=8)
    cached = greedy(model, src, src_len, max_len=30)
    assert cached == greedy(model, src, src_len, max_len=30, use_cache=False)
    assert len({tuple(o) for o in cached}) > 1  # outputs depend on the source
    assert all(EOS not in o and len(o) <= 30 for o in cached)


@pytest.mark.parametrize("seed", range(3))
def test_beam_of_one_is_greedy(seed):
    model = tiny(seed, eos_bias=1.5)
    src, src_len = sources(seed, batch=8)
    for penalty in (0.0, 1.0):
        assert beam_search(model, src, src_len, 30, beam=1, length_penalty=penalty) == greedy(model, src, src_len, 30)


def test_beam_search_batched_equals_one_by_one():
    model = tiny(5, eos_bias=1.5)
    src, src_len = sources(5, batch=5)
    batched = beam_search(model, src, src_len, 25, beam=3)
    alone = [beam_search(model, src[i:i + 1, :src_len[i]], src_len[i:i + 1], 25, beam=3)[0] for i in range(5)]
    assert batched == alone


def test_decoding_leaves_training_mode_and_checks_length():
    model = tiny(dropout=0.3).train()
    src, src_len = sources(6)
    assert greedy(model, src, src_len, 10) == greedy(model.eval(), src, src_len, 10)
    model.train()
    beam_search(model, src, src_len, 10)
    assert model.training
    with pytest.raises(ValueError, match="positions"):
        greedy(model, src, src_len, 41)


class ScriptedModel(torch.nn.Module):
    """A stand-in decoder whose next-token probabilities are looked up by the tokens generated so far
    (unlisted prefixes end with <eos>): decoding's bookkeeping checked against hand-computed answers."""

    def __init__(self, table: dict[tuple, dict[int, float]]):
        super().__init__()
        self.table, self.cfg = table, ModelConfig(max_len=16)
        self.pad_id, self.bos_id, self.eos_id = PAD, BOS, EOS

    def encode(self, src, src_len, values=None):
        return torch.zeros(src.shape[0], 1, 1), torch.ones(src.shape[0], 1, 1, 1, dtype=torch.bool)

    def start_cache(self, memory, mask, src=None):
        cache = type("Prefixes", (), {})()
        cache.rows = [() for _ in range(memory.shape[0])]
        cache.reorder = lambda index, memory=True: setattr(cache, "rows", [cache.rows[i] for i in index.tolist()])
        return cache

    def decode_step(self, tokens, cache, prefix=None):
        cache.rows = [row + (t,) for row, t in zip(cache.rows, tokens.tolist())]
        probs = torch.full((len(cache.rows), 8), 1e-9)
        for i, row in enumerate(cache.rows):
            for token, p in self.table.get(row[1:], {EOS: 1.0}).items():
                probs[i, token] = p
        return probs.log()


def test_beam_search_on_a_scripted_distribution():
    a, b, c, d, e = 3, 4, 5, 6, 7
    # greedy takes a then c (0.5 * 0.4 = 0.2); [b] (0.4 * 0.9 = 0.36) is the best; [] scores 0.1
    model = ScriptedModel({(): {a: 0.5, b: 0.4, EOS: 0.1}, (a,): {c: 0.4, d: 0.3, e: 0.3}, (b,): {EOS: 0.9}})
    src, src_len = torch.zeros(2, 1, dtype=torch.long), torch.ones(2, dtype=torch.long)
    assert greedy(model, src, src_len, 5) == [[a, c]] * 2
    assert beam_search(model, src, src_len, 5, beam=1, length_penalty=0.0) == [[a, c]] * 2
    assert beam_search(model, src, src_len, 5, beam=2, length_penalty=0.0) == [[b]] * 2
    # an <eos> ranked below the beam does not finish a hypothesis: beam 1 stays greedy ([] scores 0.4)
    model = ScriptedModel({(): {a: 0.6, EOS: 0.4}, (a,): {EOS: 0.5, b: 0.3, c: 0.2}})
    assert beam_search(model, src, src_len, 5, beam=1, length_penalty=0.0) == [[a]] * 2
    assert beam_search(model, src, src_len, 5, beam=2, length_penalty=0.0) == [[]] * 2
    # the length penalty favours longer answers: log(0.3)/2 > log(0.4)/1
    assert beam_search(model, src, src_len, 5, beam=2, length_penalty=1.0) == [[a]] * 2


# ------------------------------------------------------------------- a task learnt end to end

def reverse_batch(g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reverse 2..5 symbols (ids 3..12): src ``a b c`` (padded to 5), tgt ``<bos> c b a <eos>``."""
    src = torch.randint(3, 13, (n, 5), generator=g)
    src_len = torch.randint(2, 6, (n,), generator=g)
    tgt = torch.full((n, 7), PAD)
    tgt[:, 0] = BOS
    for i, length in enumerate(src_len.tolist()):
        tgt[i, 1:length + 1] = src[i, :length].flip(0)
        tgt[i, length + 1] = EOS
        src[i, length:] = PAD
    return src, src_len, tgt


def score(model: Seq2Seq, src, src_len, outputs: list[list[int]], max_len: int, penalty: float) -> list[float]:
    """sum(log p) / length ** penalty of each output (with its <eos> unless it was cut at max_len)."""
    scores = []
    for i, out in enumerate(outputs):
        tgt = torch.tensor([[BOS] + out + ([EOS] if len(out) < max_len else [])])
        with torch.no_grad():
            logp = torch.log_softmax(model(src[i:i + 1], src_len[i:i + 1], tgt[:, :-1]).logits, dim=-1)[0]
        scores.append(logp.gather(1, tgt[0, 1:, None]).sum().item() / (tgt.shape[1] - 1) ** penalty)
    return scores


@pytest.fixture(scope="module")
def reverse_models() -> dict[int, dict]:
    """A 1+1-layer model trained to reverse sequences; state dicts after 40 and 200 Adam steps."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = Seq2Seq(ModelConfig(enc_layers=1, dec_layers=1, width=32, heads=4, max_len=16), 13, PAD, BOS, EOS)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    snapshots = {}
    for step in range(1, 201):
        src, src_len, tgt = reverse_batch(g, 64)
        logits = model(src, src_len, tgt[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in (40, 200):
            snapshots[step] = {k: v.clone() for k, v in model.state_dict().items()}
    return snapshots


def load(state: dict) -> Seq2Seq:
    model = Seq2Seq(ModelConfig(enc_layers=1, dec_layers=1, width=32, heads=4, max_len=16), 13, PAD, BOS, EOS)
    model.load_state_dict(state)
    return model.eval()


def test_reverse_task_learns_to_100_percent(reverse_models):
    model = load(reverse_models[200])
    src, src_len, tgt = reverse_batch(torch.Generator().manual_seed(123), 256)
    answers = [row[1:n + 1] for row, n in zip(tgt.tolist(), src_len.tolist())]
    assert greedy(model, src, src_len, 8) == answers
    assert greedy(model, src, src_len, 8, use_cache=False) == answers
    assert beam_search(model, src, src_len, 8, beam=3) == answers


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_beam_search_scores_at_least_greedy(reverse_models, penalty):
    model = load(reverse_models[40])  # half-trained: uncertain, so beams and greedy differ
    src, src_len, _ = reverse_batch(torch.Generator().manual_seed(7), 48)
    best = beam_search(model, src, src_len, 10, beam=4, length_penalty=penalty)
    first = greedy(model, src, src_len, 10)
    assert beam_search(model, src, src_len, 10, beam=1, length_penalty=penalty) == first
    beam_scores, greedy_scores = score(model, src, src_len, best, 10, penalty), score(model, src, src_len, first, 10, penalty)
    assert all(b >= g - 1e-4 for b, g in zip(beam_scores, greedy_scores))
    assert sum(b > g + 1e-4 for b, g in zip(beam_scores, greedy_scores)) >= 1  # the search found better


# --------------------------------------------------------------- restricted output vocabulary

ANSWER = [PAD, BOS, EOS, 5, 7, 8, 11, 12, 19]


@pytest.mark.parametrize("variant", ["post-learned", "shared-embeddings"])
def test_restricted_read_out_is_the_full_one_at_the_answer_tokens(variant):
    full = tiny(**VARIANTS[variant])
    restricted = Seq2Seq(full.cfg, VOCAB, PAD, BOS, EOS, output_ids=ANSWER).eval()
    restricted.load_state_dict(full.state_dict())  # same weights: the buffers are not saved
    src, src_len = sources(2)
    tgt_in = torch.cat([torch.full((6, 1), BOS), torch.randint(3, VOCAB, (6, 5))], dim=1)
    with torch.no_grad():
        a, b = full(src, src_len, tgt_in).logits, restricted(src, src_len, tgt_in).logits
        assert b.shape == (6, 6, len(ANSWER))
        torch.testing.assert_close(b, a[..., ANSWER])
        step = restricted.to_vocab(b)
    assert torch.isinf(step[..., [3, 4, 6]]).all() and torch.equal(step[..., ANSWER], b)
    assert restricted.target_index(torch.tensor([EOS, 7, 19, 4])).tolist() == [2, 4, 8, -1]


@pytest.mark.parametrize("use_cache", [True, False])
def test_restricted_model_decodes_only_answer_tokens(use_cache):
    model = tiny(3, eos_bias=-5.0)
    restricted = Seq2Seq(model.cfg, VOCAB, PAD, BOS, EOS, output_ids=ANSWER).eval()
    restricted.load_state_dict(model.state_dict())
    src, src_len = sources(3)
    out = greedy(restricted, src, src_len, max_len=12, use_cache=use_cache)
    assert all(set(o) <= set(ANSWER) for o in out) and any(len(o) > 0 for o in out)
    assert out == greedy(restricted, src, src_len, max_len=12, use_cache=not use_cache)
    assert beam_search(restricted, src, src_len, beam=1, max_len=12) == out


def test_output_ids_must_include_eos():
    with pytest.raises(ValueError):
        Seq2Seq(ModelConfig(enc_layers=1, dec_layers=1, width=16, heads=2), VOCAB, PAD, BOS, EOS, output_ids=[5, 6])

