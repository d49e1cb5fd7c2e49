"""The U-Net of Ho et al. (2020): a PixelCNN++-style backbone of residual blocks with self-attention,
a sinusoidal time embedding fed to every block, and (optionally) text conditioning.

Configured by one dataclass (``UNetConfig``) that a checkpoint stores as JSON, so a run folder rebuilds its network.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import AttentionBlock, Downsample, ResBlock, Upsample, group_norm, timestep_embedding, zero_module


TEXT_POS_DIM = 64      # sinusoidal features per token position (UNetConfig.text_positions)


@dataclass
class UNetConfig:
    image_size: int = 32                      # square side; any H×W divisible by 2**(len(channel_mults)-1) works
    in_channels: int = 3
    base_channels: int = 128                  # paper, CIFAR-10
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)   # paper, 32×32
    num_res_blocks: int = 2                   # paper
    attention_resolutions: tuple[int, ...] = (16,)  # paper: self-attention at 16×16
    dropout: float = 0.1                      # paper, CIFAR-10
    heads: int = 1                            # paper: single-head attention
    groups: int = 32                          # GroupNorm groups (paper)
    learn_sigma: bool = False                 # True: output 2×in_channels, [mean | variance interpolation v]
    context_dim: int | None = None            # text token width for cross-attention (None: unconditional)
    pooled_dim: int | None = None             # pooled text vector width, added to the time embedding (GLIDE)
    scale_shift: bool = False                 # AdaGN conditioning in ResBlocks (Nichol & Dhariwal); paper: additive
    text_layers: int = 0                      # trainable transformer layers over the frozen token states (text models)
    text_positions: bool = False              # add learned token-position features to the text states (see UNet)
    cross_attention: str = "joint"            # joint: tokens are extra keys of the self-attention (GLIDE); separate:
                                              # a cross-attention of their own after it (latent diffusion)
    text_key_rank: int = 0                    # > 0: attention keys read the token states through their top-k
                                              # principal directions over the training captions (see UNet)

    def __post_init__(self) -> None:
        self.channel_mults = tuple(int(m) for m in self.channel_mults)
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        if self.cross_attention not in ("joint", "separate"):
            raise ValueError(f"unknown cross_attention {self.cross_attention!r}: choose joint or separate")
        if self.text_key_rank < 0 or (self.context_dim and self.text_key_rank > self.context_dim):
            raise ValueError(f"text_key_rank={self.text_key_rank} must be in 0..{self.context_dim or 0} "
                             f"(the token width)")
        if self.text_key_rank and (self.text_layers or self.text_positions or not self.context_dim):
            raise ValueError(f"text_key_rank needs a text model without text_layers or text_positions: its basis "
                             f"is fitted once on the frozen token states, which those would change while training")

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        d["attention_resolutions"] = list(self.attention_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown U-Net config keys: {', '.join(sorted(unknown))}")
        return cls(**d)


PRESETS: dict[str, UNetConfig] = {
    # Ho et al. CIFAR-10 model: 35.7M parameters.
    "ddpm-cifar10": UNetConfig(32, 3, 128, (1, 2, 2, 2), 2, (16,), 0.1),
    # Ho et al. 256×256 models (LSUN, CelebA-HQ): 114M parameters.
    "ddpm-256": UNetConfig(256, 3, 128, (1, 1, 2, 2, 4, 4), 2, (16,), 0.0),
    # Sized for 28×28 digits on a laptop CPU (28 → 14 → 7). 8 GroupNorm groups, not 32: with 32 channels, 32 groups
    # is instance norm, which strips every channel's mean and gave grey-background "blob" samples; AdaGN conditioning
    # (scale_shift) made text conditioning learn far faster (benchmarks/results/text_recipe_ablation.jsonl).
    "mnist-tiny": UNetConfig(28, 1, 32, (1, 2, 2), 1, (7,), 0.0, groups=8, scale_shift=True),
    "mnist-small": UNetConfig(28, 1, 48, (1, 2, 2), 2, (7,), 0.1, groups=8, scale_shift=True),
    # 32×32 scenes (the shapes dataset, small folders) on a CPU: 32 → 16 → 8, attention (and text cross-attention,
    # which places objects) at 16×16 and 8×8.
    "tiny-32": UNetConfig(32, 3, 32, (1, 2, 2), 1, (16, 8), 0.0, groups=8, scale_shift=True),
    # A few thousand parameters: smoke tests and CI (any size divisible by 2).
    "micro": UNetConfig(8, 1, 8, (1, 2), 1, (4,), 0.0, groups=4),
}


def preset_config(name: str, **overrides: Any) -> UNetConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return UNetConfig(**{**PRESETS[name].to_dict(), **overrides})


@torch.no_grad()
def principal_directions(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean [D], principal directions [D, D] (columns, largest variance first) and their variances [D] of
    LayerNorm'd (no affine) states [M, D], in float64."""
    z = F.layer_norm(tokens.double(), tokens.shape[-1:])
    mean = z.mean(0)
    cov = torch.zeros(z.shape[1], z.shape[1], dtype=torch.float64)
    for chunk in (z - mean).split(65536):
        cov += chunk.T @ chunk
    values, vectors = torch.linalg.eigh(cov)                       # ascending eigenvalues
    return mean, vectors.flip(1), values.flip(0)


def projected_norm(tokens: torch.Tensor, norm: nn.LayerNorm, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``norm`` applied to ``tokens`` [..., D] with the normalised states projected on the columns of ``basis``
    [D, k] around ``mean`` [D] before its affine: LayerNorm'd without the affine, projected, then the affine."""
    mean, basis = mean.to(tokens.dtype), basis.to(tokens.dtype)
    z = mean + ((F.layer_norm(tokens, tokens.shape[-1:]) - mean) @ basis) @ basis.T
    return z * norm.weight.to(z.dtype) + norm.bias.to(z.dtype)


class UNet(nn.Module):
    """``net(x_t, t, cond=None) -> [N, out_channels, H, W]``. ``cond`` (text models) has ``.tokens`` [N, L, D],
    ``.mask`` [N, L] (True = real token) and ``.pooled`` [N, D]."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        ch = c.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # The pooled vector is LayerNorm'd first: sentence embeddings are unit-norm with components ~1/sqrt(D), and
        # prompts that differ in one word differ in a small part of that, which a plain linear layer learns slowly.
        self.pooled_proj = (nn.Sequential(nn.LayerNorm(c.pooled_dim), nn.Linear(c.pooled_dim, emb_dim))
                            if c.pooled_dim else None)
        if c.context_dim:
            # The learned null prompt (Ho & Salimans): one token and one pooled vector that stand for "no prompt".
            self.null_tokens = nn.Parameter(torch.randn(1, 1, c.context_dim) * 0.02)
            self.context_norm = nn.LayerNorm(c.context_dim)      # text states enter at a fixed scale (Imagen)
            self.text_layers = text_adapter(c.context_dim, c.text_layers) if c.text_layers else None
            # Attention is blind to the order of its keys: permuting the prompt's token states permutes the keys and
            # values together and leaves every output unchanged. Which object a relation names first then reaches the
            # U-Net only through whatever position the frozen states still carry. With text_positions, a learned
            # linear map of each token's sinusoidal position is added to its frozen state (zero at initialisation),
            # before the trainable text layers (which have no positions of their own) and the LayerNorm.
            self.text_pos = zero_module(nn.Linear(TEXT_POS_DIM, c.context_dim)) if c.text_positions else None
            # Which token a pixel reads is decided by its key. Trained on a few words per meaning ("small", "tiny"),
            # keys learn those words' own directions, and an unseen synonym ("wee") whose state differs there gets
            # almost no attention although a linear probe reads its meaning. With text_key_rank = k, keys see the
            # (LayerNorm'd) states only through the k principal directions of the training captions' states; values
            # still read the full states. The basis is a buffer fitted once before training (fit_key_basis) and saved
            # with the weights. Measured on shapes (k = 16, session 18): unseen size words got more attention but
            # were still not read, and order learning suffered; so it is off by default (README, ablation 57-58).
            if c.text_key_rank:
                self.register_buffer("key_mean", torch.zeros(c.context_dim))
                self.register_buffer("key_basis", torch.zeros(c.context_dim, c.text_key_rank))
        elif c.text_layers or c.text_positions:
            raise ValueError(f"text_layers={c.text_layers} and text_positions={c.text_positions}: each needs a text "
                             f"model (context_dim set)")
        if c.pooled_dim:
            self.null_pooled = nn.Parameter(torch.randn(c.pooled_dim) * 0.02)
        self.conv_in = nn.Conv2d(c.in_channels, ch, 3, padding=1)

        def attn(channels: int) -> AttentionBlock:
            return AttentionBlock(channels, c.heads, c.groups, c.context_dim, c.cross_attention == "separate")

        self.down = nn.ModuleList()
        skips, cur, res = [ch], ch, c.image_size
        for level, mult in enumerate(c.channel_mults):
            for _ in range(c.num_res_blocks):
                out = ch * mult
                self.down.append(_Stage(ResBlock(cur, out, emb_dim, c.dropout, c.groups, c.scale_shift),
                                        attn(out) if res in c.attention_resolutions else None))
                cur = out
                skips.append(cur)
            if level != len(c.channel_mults) - 1:
                self.down.append(_Stage(Downsample(cur)))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([_Stage(ResBlock(cur, cur, emb_dim, c.dropout, c.groups, c.scale_shift), attn(cur)),
                                  _Stage(ResBlock(cur, cur, emb_dim, c.dropout, c.groups, c.scale_shift))])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            for i in range(c.num_res_blocks + 1):
                out = ch * mult
                self.up.append(_Stage(ResBlock(cur + skips.pop(), out, emb_dim, c.dropout, c.groups, c.scale_shift),
                                      attn(out) if res in c.attention_resolutions else None,
                                      Upsample(out) if (level and i == c.num_res_blocks) else None))
                cur = out
            if level:
                res *= 2
        self.norm_out = group_norm(cur, c.groups)
        self.conv_out = zero_module(nn.Conv2d(cur, c.out_channels, 3, padding=1))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "UNet":
        return cls(preset_config(name, **overrides))

    def check_input_size(self, height: int, width: int) -> None:
        f = self.config.downsample_factor
        if height % f or width % f:
            raise ValueError(f"image size {height}x{width} is not divisible by {f} (the U-Net halves it "
                             f"{len(self.config.channel_mults) - 1} times): resize or crop to a multiple of {f}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        self.check_input_size(x.shape[-2], x.shape[-1])
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        context = mask = None
        if self.config.context_dim or self.config.pooled_dim:
            tokens, mask, pooled = self._with_null(cond, x.shape[0], x.device)
            if self.pooled_proj is not None:
                emb = emb + self.pooled_proj(pooled)
            if self.config.context_dim:
                if self.text_pos is not None:       # before the adapter, so its layers can read word order too
                    pos = torch.arange(tokens.shape[1], device=tokens.device)
                    tokens = tokens + self.text_pos(timestep_embedding(pos, TEXT_POS_DIM).to(tokens.dtype))
                if self.text_layers is not None:
                    tokens = self.text_layers(tokens, src_key_padding_mask=~mask)
                context = self.context_norm(tokens)
                if self.config.text_key_rank:
                    context = (context, self._key_context(tokens))
        h = self.conv_in(x)
        hs = [h]
        for stage in self.down:
            h = stage(h, emb, context, mask)
            hs.append(h)
        for stage in self.mid:
            h = stage(h, emb, context, mask)
        for stage in self.up:
            h = stage(torch.cat([h, hs.pop()], dim=1), emb, context, mask)
        return self.conv_out(F.silu(self.norm_out(h)))

    def _key_context(self, tokens: torch.Tensor) -> torch.Tensor:
        """The keys' view of the tokens: the context LayerNorm with its states projected on the fitted basis."""
        return projected_norm(tokens, self.context_norm, self.key_mean, self.key_basis)

    @torch.no_grad()
    def fit_key_basis(self, tokens: torch.Tensor) -> None:
        """Fit the keys' basis (``text_key_rank``) on the real token states [M, D] of the training captions: the
        mean and top principal directions of the LayerNorm'd states."""
        k = self.config.text_key_rank
        if not k:
            raise ValueError("fit_key_basis needs a model built with text_key_rank > 0")
        if len(tokens) <= k:
            raise ValueError(f"text_key_rank={k} needs more than {k} caption token states to fit, got {len(tokens)}")
        mean, vectors, _ = principal_directions(tokens)
        self.key_mean.copy_(mean.to(self.key_mean.dtype))
        self.key_basis.copy_(vectors[:, :k].to(self.key_basis.dtype))


    def _with_null(self, cond: Any, n: int, device: torch.device):
        """(tokens, mask, pooled) with the learned null prompt wherever ``cond.is_null`` (or everywhere if cond is
        None). Padded positions stay masked out; the null prompt is one real token."""
        c = self.config
        dtype = self.time_mlp[0].weight.dtype
        if cond is None:
            tokens = torch.zeros(n, 1, c.context_dim or 1, device=device, dtype=dtype)
            mask = torch.ones(n, 1, dtype=torch.bool, device=device)
            pooled = torch.zeros(n, c.pooled_dim or 1, device=device, dtype=dtype)
            is_null = torch.ones(n, dtype=torch.bool, device=device)
        else:
            tokens, mask = cond.tokens.to(device, dtype), cond.mask.to(device).bool()
            pooled = cond.pooled.to(device, dtype) if c.pooled_dim else None
            is_null = getattr(cond, "is_null", None)
            is_null = torch.zeros(n, dtype=torch.bool, device=device) if is_null is None else is_null.to(device).bool()
        if c.context_dim:
            null_tok = torch.zeros_like(tokens)
            null_tok[:, :1] = self.null_tokens.to(tokens.dtype)
            null_mask = torch.zeros_like(mask)
            null_mask[:, 0] = True
            tokens = torch.where(is_null[:, None, None], null_tok, tokens)
            mask = torch.where(is_null[:, None], null_mask, mask)
        if c.pooled_dim:
            pooled = torch.where(is_null[:, None], self.null_pooled.to(pooled.dtype).expand_as(pooled), pooled)
        return tokens, mask, pooled


def text_adapter(dim: int, layers: int) -> nn.TransformerEncoder:
    """Pre-norm transformer layers (heads of 64 channels where ``dim`` allows) trained with the U-Net on top of the
    frozen encoder's token states, so the tokens the U-Net attends to can carry what the frozen states leave implicit
    (e.g. which object a relation names first). Output projections start at zero: at initialisation the layers pass
    the frozen states through unchanged. Padded tokens are masked as keys, so they never change real tokens."""
    heads = dim // 64 if dim % 64 == 0 else 1
    layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
    stack = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    for m in stack.layers:
        zero_module(m.self_attn.out_proj)
        zero_module(m.linear2)
    return stack


class _Stage(nn.Module):
    """One step of the U-Net ladder: a ResBlock (or a resampler), then optional attention and upsampling."""

    def __init__(self, block: nn.Module, attn: AttentionBlock | None = None, upsample: Upsample | None = None):
        super().__init__()
        self.block, self.attn, self.upsample = block, attn, upsample

    def forward(self, h, emb, context=None, mask=None):
        h = self.block(h, emb) if isinstance(self.block, ResBlock) else self.block(h)
        if self.attn is not None:
            h = self.attn(h, context, mask)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
