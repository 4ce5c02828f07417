"""Attention rollout / gradient rollout: hand-computed cases and capture from ViT-style blocks
(timm-style with a fused-attention switch, mmpretrain-style always fused, nn.MultiheadAttention)
and the DETR encoder."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmattnvis.capture.tokens import (
    TokenAttentionCapture,
    find_token_attention,
    token_attention_kind,
)
from mmattnvis.methods.rollout import attention_rollout, rollout_from_capture
from mmattnvis.utils.errors import UserInputError

A1 = torch.tensor([[[0.5, 0.5], [0.25, 0.75]]])
A2 = torch.tensor([[[0.9, 0.1], [0.4, 0.6]]])


def test_rollout_multiplies_later_layers_on_the_left():
    # (A + I) row-normalised: A1 -> [[.75, .25], [.125, .875]], A2 -> [[.95, .05], [.2, .8]];
    # rollout = A2' @ A1' (vit-explain's gradient rollout multiplied in the reverse order).
    out = attention_rollout([A1, A2])
    assert torch.allclose(out, torch.tensor([[0.71875, 0.28125], [0.25, 0.75]]))
    reversed_order = attention_rollout([A2, A1])
    assert torch.allclose(reversed_order, torch.tensor([[0.7625, 0.2375], [0.29375, 0.70625]]))


def test_rows_are_normalised_with_keepdim():
    """Dividing by row sums without keepdim would scale columns; every row must sum to 1."""
    a = torch.tensor([[[0.7, 0.2, 0.1], [0.0, 0.1, 0.9], [0.3, 0.3, 0.4]]]) * 3.0
    out = attention_rollout([a])
    expected = (a[0] + torch.eye(3)) / (a[0] + torch.eye(3)).sum(1, keepdim=True)
    assert torch.allclose(out, expected) and torch.allclose(out.sum(1), torch.ones(3))


def test_head_fusion_and_discard_ratio_keep_the_first_token():
    heads = torch.tensor([[[0.1, 0.2, 0.3, 0.4]] * 4, [[0.4, 0.3, 0.2, 0.1]] * 4])
    mx = attention_rollout([heads], head_fusion='max')
    mn = attention_rollout([heads], head_fusion='min')
    row_max = torch.tensor([0.4, 0.3, 0.3, 0.4]) + torch.eye(4)[0]
    assert torch.allclose(mx[0], row_max / row_max.sum())
    row_min = torch.tensor([0.1, 0.2, 0.2, 0.1]) + torch.eye(4)[0]
    assert torch.allclose(mn[0], row_min / row_min.sum())
    one = torch.tensor([[[0.1, 0.2, 0.3, 0.4]] * 4])
    d = attention_rollout([one], discard_ratio=0.5)
    # Lowest half of each row zeroed, but never column 0: row 0 keeps 0.1 and 0.4.
    row = torch.tensor([0.1, 0.0, 0.0, 0.4]) + torch.eye(4)[0]
    assert torch.allclose(d[0], row / row.sum())
    d2 = attention_rollout([one], discard_ratio=0.5, keep_first=False)
    row2 = torch.tensor([0.0, 0.0, 0.3, 0.4]) + torch.eye(4)[0]
    assert torch.allclose(d2[0], row2 / row2.sum())


def test_gradient_rollout_weights_attention_by_positive_gradient():
    attn = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]]])
    grad = torch.tensor([[[2.0, -1.0], [0.0, 1.0]], [[1.0, 3.0], [-2.0, 1.0]]])
    fused = ((grad * attn).clamp(min=0)).mean(0)  # [[1, 0], [0, .75]]
    assert torch.allclose(fused, torch.tensor([[1.0, 0.0], [0.0, 0.75]]))
    out = attention_rollout([attn], grads=[grad])
    a = fused + torch.eye(2)
    assert torch.allclose(out, a / a.sum(1, keepdim=True))


class TimmStyleAttention(nn.Module):
    """The layout of timm's ``Attention``: qkv, num_heads, scale, fused_attn, attn_drop."""

    def __init__(self, dim=16, heads=4, fused=True):
        super().__init__()
        self.num_heads = heads
        self.scale = (dim // heads)**-0.5
        self.fused_attn = fused
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(
            2, 0, 3, 1, 4)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            x = self.attn_drop(attn) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class AlwaysFusedAttention(TimmStyleAttention):
    """mmpretrain-style: qkv + num_heads, always ``scaled_dot_product_attention``."""

    def __init__(self, dim=16, heads=4):
        super().__init__(dim, heads, True)
        del self.fused_attn
        del self.attn_drop

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(
            2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(
            b, n, c))


class MHABlock(nn.Module):

    def __init__(self, dim=16, heads=4):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        return x + self.attn(x, x, x, need_weights=False)[0]


class TinyViT(nn.Module):

    def __init__(self, block):
        super().__init__()
        self.blocks = nn.Sequential(*[block() for _ in range(3)])
        self.head = nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.blocks(x)[:, 0])


def manual_attention(block, x):
    if isinstance(block, MHABlock):
        _, w = block.attn(x, x, x, need_weights=True, average_attn_weights=False)
        return w
    b, n, c = x.shape
    q, k, _ = block.qkv(x).reshape(b, n, 3, block.num_heads, c // block.num_heads).permute(
        2, 0, 3, 1, 4)
    return ((q * block.scale) @ k.transpose(-2, -1)).softmax(-1)


@pytest.mark.parametrize('block,kind', [(TimmStyleAttention, 'timm'),
                                        (AlwaysFusedAttention, 'fused'),
                                        (MHABlock, None)])
def test_capture_equals_manual_attention_and_leaves_model_alone(block, kind):
    torch.manual_seed(0)
    model = TinyViT(block).eval()
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        ref = model(x)
        inputs, h = [], x
        for blk in model.blocks:
            inputs.append(manual_attention(blk, h))
            h = blk(h)
    names = list(find_token_attention(model))
    assert len(names) == 3
    assert token_attention_kind(dict(model.named_modules())[names[0]]) == (kind or 'mha')
    with TokenAttentionCapture(model) as cap, torch.no_grad():
        out = model(x)
    assert torch.equal(out, ref) or torch.allclose(out, ref, atol=1e-6)
    maps = cap.maps()
    assert len(maps) == 3 and cap.names == names
    for got, want in zip(maps, inputs):
        assert got.shape == (2, 4, 7, 7) and torch.allclose(got, want, atol=1e-5)
    if kind == 'timm':
        assert all(b.fused_attn for b in model.blocks)  # switch restored
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    r = rollout_from_capture(cap, batch_index=1)
    assert r.shape == (7, 7) and torch.allclose(r.sum(1), torch.ones(7))


@pytest.mark.parametrize('block', [TimmStyleAttention, MHABlock])
def test_gradient_rollout_from_capture(block):
    torch.manual_seed(0)
    model = TinyViT(block).eval()
    x = torch.randn(1, 5, 16)
    with TokenAttentionCapture(model, keep_grad=True) as cap:
        model(x).sum().backward()
    grads = cap.grads()
    assert len(grads) == 3 and all(g.shape == (1, 4, 5, 5) for g in grads)
    # The last block's attention only matters through the class-token row.
    assert grads[-1][0, :, 1:].abs().sum() == 0 and grads[-1][0, :, 0].abs().sum() > 0
    r = rollout_from_capture(cap, gradient=True)
    assert r.shape == (5, 5) and torch.isfinite(r).all()
    if block is TimmStyleAttention:
        assert all(b.fused_attn for b in model.blocks)
    model.zero_grad()


def test_fused_without_switch_refuses_gradient_rollout_and_capture_errors():
    model = TinyViT(AlwaysFusedAttention)
    with pytest.raises(UserInputError, match='gradient rollout is not available'):
        TokenAttentionCapture(model, keep_grad=True)
    with pytest.raises(UserInputError, match='not an attention module'):
        TokenAttentionCapture(model, names=['head'])
    with pytest.raises(UserInputError, match='no token attention'):
        TokenAttentionCapture(nn.Sequential(nn.Linear(2, 2)))


def test_capture_cleans_up_on_exception():
    model = TinyViT(TimmStyleAttention)
    with pytest.raises(RuntimeError):
        with TokenAttentionCapture(model):
            model(torch.randn(1, 5, 3))  # wrong width
    assert all(b.fused_attn for b in model.blocks)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_detr_encoder_rollout():
    """DETR's encoder self-attention (mmcv MultiheadAttention -> nn.MultiheadAttention)."""
    from mmattnvis.apis import build_test_pipeline, prepare_batch

    from detr_utils import small_detr
    model = small_detr('detr', scale=128)
    img = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    data = prepare_batch([img], build_test_pipeline(model.cfg), ['d.png'])
    enc = [n for n in find_token_attention(model) if n.startswith('encoder')]
    assert len(enc) == 2
    with TokenAttentionCapture(model, enc) as cap, torch.no_grad():
        model.test_step(data)
    maps = cap.maps()
    n = maps[0].shape[-1]
    assert [m.shape for m in maps] == [(1, 8, n, n)] * 2
    assert torch.allclose(maps[0].sum(-1), torch.ones(1, 8, n), atol=1e-5)
    r = rollout_from_capture(cap, head_fusion='max', discard_ratio=0.5)
    assert r.shape == (n, n) and torch.allclose(r.sum(1), torch.ones(n), atol=1e-4)
