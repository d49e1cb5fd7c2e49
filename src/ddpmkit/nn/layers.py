"""Building blocks of the DDPM U-Net (Ho et al. 2020, appendix B; the PixelCNN++ backbone with attention)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal embedding of integer timesteps, [N] -> [N, dim] (Vaswani et al.; Ho et al. §4)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with at most ``groups`` groups that divide ``channels`` (32 in the paper)."""
    g = math.gcd(channels, groups)
    return nn.GroupNorm(g, channels, eps=1e-6)


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv3x3, + time embedding, GroupNorm → SiLU → dropout → conv3x3 (zero-init), + skip.

    ``scale_shift=True`` is Nichol & Dhariwal's AdaGN: the embedding gives a scale and a shift applied after the
    second GroupNorm, h = norm(h)·(1 + s) + b, instead of being added before it (Ho et al.)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int = 32,
                 scale_shift: bool = False):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the H×W positions (one head in Ho et al.), residual, output projection zero-initialised.

    With ``context_dim`` set, the keys and values also include projected context tokens (text states), so one
    attention reads the image and the prompt together (GLIDE's encoder-kv cross-attention); ``context_mask`` marks
    real tokens (True) so padding is never attended to. With ``separate``, the prompt is read instead by a cross-attention
    of its own after the self-attention (``CrossAttention``, as latent diffusion does).
    """

    def __init__(self, channels: int, heads: int = 1, groups: int = 32, context_dim: int | None = None,
                 separate: bool = False):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention channels {channels} must be divisible by heads {heads}")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_module(nn.Conv2d(channels, channels, 1))
        self.context_kv = nn.Linear(context_dim, 2 * channels) if context_dim and not separate else None
        self.cross = CrossAttention(channels, context_dim, heads, groups) if context_dim and separate else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | tuple | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``context``: the token states [N, L, D], or a pair (values' states, keys' states) of that shape."""
        x = self._self_attention(x, context, context_mask)
        return self.cross(x, context, context_mask) if self.cross is not None and context is not None else x

    def _self_attention(self, x, context, context_mask):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k, v = (z.transpose(-1, -2) for z in (q, k, v))         # [N, heads, HW, d]
        mask = None
        if self.context_kv is not None and context is not None:
            ck, cv = context_keys_values(self.context_kv, context, n, self.heads, c // self.heads)
            k, v = torch.cat([k, ck.to(k.dtype)], 2), torch.cat([v, cv.to(v.dtype)], 2)
            if context_mask is not None:
                keep = torch.cat([torch.ones(n, h * w, dtype=torch.bool, device=x.device), context_mask.bool()], 1)
                mask = keep[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class CrossAttention(nn.Module):
    """Each pixel attends to the prompt's token states alone (latent diffusion's cross-attention), residual, output
    projection zero-initialised. In the joint form (GLIDE) the tokens are extra keys beside the H×W pixels and start
    with about L / (H·W + L) of the attention (4% at 16×16); here every pixel's softmax is over the tokens only."""

    def __init__(self, channels: int, context_dim: int, heads: int = 1, groups: int = 32):
        super().__init__()
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = zero_module(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        d = c // self.heads
        q = self.q(self.norm(x)).reshape(n, self.heads, d, h * w).transpose(-1, -2)          # [N, heads, HW, d]
        k, v = context_keys_values(self.kv, context, n, self.heads, d)                     # [N, heads, L, d]
        mask = None if context_mask is None else context_mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


def context_keys_values(kv: nn.Linear, context, n: int, heads: int, d: int):
    """Keys and values [N, heads, L, d] of the text tokens through the joint projection ``kv``; ``context`` is the
    token states, or a pair (values' states, keys' states) when keys read a projection of them (text_key_rank)."""
    if isinstance(context, tuple):
        values, keys = context
        c = heads * d
        k = F.linear(keys, kv.weight[:c], kv.bias[:c])
        v = F.linear(values, kv.weight[c:], kv.bias[c:])
        return tuple(z.reshape(n, -1, heads, d).transpose(1, 2) for z in (k, v))
    return kv(context).reshape(n, -1, 2, heads, d).permute(2, 0, 3, 1, 4)


class Downsample(nn.Module):
    """3×3 convolution with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 then a 3×3 convolution, computed without building the ×2 image.

    Every output pixel of that pair sees a 2×2 window of the input, with one of four "phase" kernels made by summing
    rows and columns of the 3×3 kernel (the sub-pixel identity). Running the four 2×2 kernels at the input resolution
    costs 16/36 of the multiply-adds of the 3×3 convolution at twice the resolution and gives the same function, so
    the parameter stays the 3×3 ``conv.weight`` (checkpoints hold the usual layer)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        # Row (column) a of the output pair reads input rows (i - 1 + a, i + a) with these sums of kernel rows.
        self.register_buffer("fold", torch.tensor([[[1.0, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]]),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.conv.out_channels
        fold = self.fold.to(self.conv.weight.dtype)
        k = torch.einsum("apk,bql,oikl->aboipq", fold, fold, self.conv.weight).reshape(4 * c, -1, 2, 2)
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), k, self.conv.bias.repeat(4)).view(n, 2, 2, c, h + 1, w + 1)
        phases = [[y[:, a, b, :, a:a + h, b:b + w] for b in (0, 1)] for a in (0, 1)]
        rows = [torch.stack(p, dim=-1).reshape(n, c, h, 2 * w) for p in phases]     # interleave columns
        return torch.stack(rows, dim=-2).reshape(n, c, 2 * h, 2 * w)                # interleave rows
