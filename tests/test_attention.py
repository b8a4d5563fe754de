"""The one attention function against an explicit definition written here, and the two head modes."""

import math

import pytest
import torch

from linalgformer.models.attention import MultiHeadAttention, attention, reference_attention


pytestmark = pytest.mark.usefixtures("one_thread")


def explicit(q, k, v, kind, *, keep=None, normalize=False, scale=None, bias=None):
    """Attention written out entry by entry: ``keep[i, j]`` True = query i may see key j."""
    b, h, tq, _ = q.shape
    tk = k.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if kind == "softmax" else 1.0
    keep = torch.ones(tq, tk, dtype=torch.bool) if keep is None else keep.expand(b, h, tq, tk)
    keep = keep.expand(b, h, tq, tk)
    out = torch.zeros(b, h, tq, v.shape[-1], dtype=q.dtype)
    for bi in range(b):
        for hi in range(h):
            for i in range(tq):
                seen = [j for j in range(tk) if keep[bi, hi, i, j]]
                raw = torch.stack([scale * (q[bi, hi, i] @ k[bi, hi, j])
                                   + (0.0 if bias is None else bias.expand(b, h, tq, tk)[bi, hi, i, j])
                                   for j in seen])
                if kind == "softmax":
                    weights = torch.softmax(raw, 0)
                else:
                    weights = raw.clamp(min=0) if kind == "relu" else raw
                    if normalize:
                        weights = weights / len(seen)
                out[bi, hi, i] = sum(w * v[bi, hi, j] for w, j in zip(weights, seen))
    return out


def causal_keep(tq, tk):
    """Bottom-right aligned: query i (of the last tq positions) sees keys up to tk - tq + i."""
    return torch.tensor([[j <= tk - tq + i for j in range(tk)] for i in range(tq)])


@pytest.fixture
def qkv():
    g = torch.Generator().manual_seed(0)
    shape = (2, 3, 5, 4)
    return tuple(torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))


@pytest.mark.parametrize("kind", ["softmax", "relu", "linear"])
@pytest.mark.parametrize("normalize", [False, True])
def test_plain_attention_matches_definition(qkv, kind, normalize):
    q, k, v = qkv
    got = attention(q, k, v, kind, normalize=normalize)
    torch.testing.assert_close(got, explicit(q, k, v, kind, normalize=normalize))
    torch.testing.assert_close(got, reference_attention(q, k, v, kind, normalize=normalize))


@pytest.mark.parametrize("kind", ["softmax", "relu", "linear"])
@pytest.mark.parametrize("normalize", [False, True])
def test_causal_and_mask_combine(qkv, kind, normalize):
    q, k, v = qkv
    mask = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(1)) > 0.4
    mask[..., 0] = True  # every query keeps at least one key
    got = attention(q, k, v, kind, mask=mask, causal=True, normalize=normalize)
    want = explicit(q, k, v, kind, keep=mask & causal_keep(5, 5), normalize=normalize)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kind", ["softmax", "relu", "linear"])
def test_causal_with_fewer_queries_is_bottom_right_aligned(qkv, kind):
    q, k, v = qkv
    q = q[:, :, -2:]  # the last two positions query all five keys (a decoding step)
    got = attention(q, k, v, kind, causal=True)
    torch.testing.assert_close(got, explicit(q, k, v, kind, keep=causal_keep(2, 5)))


@pytest.mark.parametrize("kind", ["softmax", "relu", "linear"])
def test_bias_is_added_to_the_scores(qkv, kind):
    q, k, v = qkv
    bias = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(attention(q, k, v, kind, bias=bias, normalize=True),
                               explicit(q, k, v, kind, bias=bias, normalize=True))
    torch.testing.assert_close(reference_attention(q, k, v, kind, bias=bias), explicit(q, k, v, kind, bias=bias))
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1).logical_not()  # with causality and a mask too
    torch.testing.assert_close(attention(q, k, v, kind, bias=bias, mask=mask, causal=True),
                               explicit(q, k, v, kind, bias=bias, keep=mask & causal_keep(5, 5)))


def test_scale_multiplies_relu_scores(qkv):
    q, k, v = qkv
    torch.testing.assert_close(attention(q, k, v, "relu", scale=0.5), explicit(q, k, v, "relu", scale=0.5))


def test_relu_attention_rejects_additive_mask(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError):
        attention(q, k, v, "relu", mask=torch.zeros(5, 5))


def test_unknown_kind_is_refused(qkv):
    with pytest.raises(ValueError, match="unknown attention kind"):
        attention(*qkv, kind="cosine")


def test_concat_heads_split_width():
    mha = MultiHeadAttention(12, 3, "relu", combine="concat")
    assert mha.head_dim == 4 and mha.q_proj.out_features == 12 and mha.out_proj.in_features == 12
    assert mha(torch.randn(2, 7, 12)).shape == (2, 7, 12)


def test_average_heads_are_full_width_and_averaged():
    torch.manual_seed(0)
    mha = MultiHeadAttention(6, 4, "relu", combine="average", out_proj=False).double()
    assert mha.head_dim == 6 and mha.q_proj.out_features == 24
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    per_head = []
    for h in range(4):  # each head on its own: the slice of the projections that belongs to it
        rows = slice(6 * h, 6 * (h + 1))
        q, k, v = (torch.nn.functional.linear(x, p.weight[rows], p.bias[rows])
                   for p in (mha.q_proj, mha.k_proj, mha.v_proj))
        per_head.append(explicit(q[:, None], k[:, None], v[:, None], "relu")[:, 0])
    torch.testing.assert_close(mha(x), sum(per_head) / 4)


def test_average_heads_with_out_projection_shape():
    mha = MultiHeadAttention(8, 2, "linear", combine="average", head_dim=5)
    assert mha.out_proj.in_features == 5
    assert mha(torch.randn(3, 4, 8)).shape == (3, 4, 8)


def test_bad_combine_and_width_are_refused():
    with pytest.raises(ValueError):
        MultiHeadAttention(8, 2, combine="sum")
    with pytest.raises(ValueError):
        MultiHeadAttention(10, 3, combine="concat")
