"""TextCond batching helpers and masked mean pooling: pure tensor checks, no model needed."""
import pytest
import torch

from ddpmkit.text import TextCond, collate, masked_mean


def make_cond(lengths, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, length = len(lengths), max(lengths)
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    tokens = torch.randn(b, length, dim, generator=g) * mask[..., None]
    pooled = torch.randn(b, dim, generator=g)
    return TextCond(tokens, mask, pooled, torch.tensor([n == 1 for n in lengths]))


def test_pad_to_longer_adds_masked_zeros_and_keeps_real_tokens():
    c = make_cond([3, 2])
    p = c.pad_to(7)
    assert p.tokens.shape == (2, 7, 4) and p.mask.shape == (2, 7)
    assert not p.mask[:, 3:].any() and torch.equal(p.tokens[:, 3:], torch.zeros(2, 4, 4))
    assert torch.equal(p.tokens[:, :3], c.tokens) and torch.equal(p.pooled, c.pooled)
    assert torch.equal(p.pad_to(3).tokens, c.tokens)   # trimming padding only


def test_pad_to_refuses_to_drop_real_tokens():
    with pytest.raises(ValueError, match=r"length >= 3"):
        make_cond([3, 1]).pad_to(2)


def test_cat_pads_to_longest_and_index_recovers_parts():
    a, b = make_cond([2, 1], seed=1), make_cond([5], seed=2)
    c = TextCond.cat([a, b])
    assert c.tokens.shape == (3, 5, 4) and c.batch_size == 3
    assert torch.equal(c.index(2).tokens, b.tokens)
    assert torch.equal(c.index(slice(0, 2)).pad_to(2).tokens, a.tokens)
    assert torch.equal(c.index(-1).pooled, b.pooled)
    assert torch.equal(c.is_null, torch.tensor([False, True, False]))
    assert torch.equal(collate([a, b]).mask, c.mask)


def test_repeat_interleaves_rows_and_to_casts_float_fields_only():
    c = make_cond([2, 3]).repeat(2)
    assert torch.equal(c.pooled[0], c.pooled[1]) and not torch.equal(c.pooled[1], c.pooled[2])
    h = c.to(dtype=torch.float16)
    assert h.tokens.dtype == torch.float16 and h.mask.dtype == torch.bool and h.is_null.dtype == torch.bool


def test_masked_mean_ignores_whatever_padded_positions_hold():
    c = make_cond([2, 4])
    before = masked_mean(c.tokens, c.mask)
    garbage = c.tokens.masked_fill(~c.mask[..., None], 1e4)
    assert torch.allclose(masked_mean(garbage, c.mask), before)
    assert torch.allclose(before[0], c.tokens[0, :2].mean(0))
    assert not torch.allclose(garbage.mean(1), before)   # the plain mean would see the garbage
