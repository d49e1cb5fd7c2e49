"""--text-key-rank: attention keys read the token states through a fixed basis fitted on the training captions."""
import pytest
import torch
import torch.nn.functional as F

import ddpmkit
from ddpmkit import UNet, UNetConfig
from ddpmkit.cli import main
from ddpmkit.config import DiffusionConfig, RunConfig, TrainConfig
from ddpmkit.errors import UserError
from ddpmkit.text.cond import TextCond
from ddpmkit.train import Trainer

D = 48


def key_net(rank: int, cross_attention: str = "separate", seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    net = UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                          attention_resolutions=(4,), groups=4, dropout=0.0, context_dim=D, pooled_dim=D,
                          cross_attention=cross_attention, text_key_rank=rank)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return net


def states(n: int, seed: int = 1) -> torch.Tensor:
    """Anisotropic token states: feature j has std 1/(1+j), around a common offset, as real encoders' are."""
    g = torch.Generator().manual_seed(seed)
    return 3.0 + torch.randn(n, D, generator=g, dtype=torch.float64) / torch.arange(1, D + 1)


def test_the_basis_is_the_top_principal_directions_of_the_normalised_states():
    net, x = key_net(6), states(4000)
    net.fit_key_basis(x.float())
    z = F.layer_norm(x, (D,))
    _, _, v = torch.linalg.svd(z - z.mean(0), full_matrices=False)
    b = net.key_basis.double()
    assert torch.allclose(b.T @ b, torch.eye(6, dtype=torch.float64), atol=1e-5)          # orthonormal
    assert torch.allclose(b @ b.T, v[:6].T @ v[:6], atol=1e-4)                             # the same subspace
    assert torch.allclose(net.key_mean.double(), z.mean(0), atol=1e-5)
    with pytest.raises(ValueError, match="needs more than 6"):
        key_net(6).fit_key_basis(x[:6].float())
    with pytest.raises(ValueError, match="text_key_rank > 0"):
        key_net(0).fit_key_basis(x.float())


@torch.no_grad()
@pytest.mark.parametrize("cross_attention", ["joint", "separate"])
def test_a_full_rank_basis_is_the_plain_model(cross_attention):
    plain, full = key_net(0, cross_attention), key_net(D, cross_attention)
    full.fit_key_basis(states(500).float())
    full.load_state_dict(plain.state_dict(), strict=False)    # the same weights; only the basis buffers differ
    cond = TextCond(states(2 * 5, seed=3).float().reshape(2, 5, D), torch.ones(2, 5, dtype=torch.bool),
                    torch.randn(2, D), torch.zeros(2, dtype=torch.bool))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 7])
    assert torch.allclose(full(x, t, cond), plain(x, t, cond), atol=1e-5)


@torch.no_grad()
def test_keys_ignore_what_the_basis_leaves_out_and_values_do_not():
    net = key_net(8)
    net.fit_key_basis(states(4000).float())
    b = net.key_basis.double()
    z = F.layer_norm(states(7, seed=5), (D,), eps=0.0)          # rows with mean 0 and variance 1: LayerNorm keeps them
    # Turn each row's part outside span(basis, ones) towards another such direction: mean, norm and the basis
    # coordinates stay, so the LayerNorm'd state moves only where the keys cannot see.
    keep = torch.cat([b, torch.ones(D, 1, dtype=torch.float64) / D ** 0.5], 1)
    outside = lambda v: v - keep @ (keep.T @ v)                     # noqa: E731
    moved = []
    for row in z:
        r = outside(row)
        w = outside(torch.randn(D, dtype=torch.float64))
        w = w - r * (r @ w) / (r @ r)
        w = w / w.norm() * r.norm()
        moved.append(row - r + 0.6 * r + 0.8 * w)              # cos θ = 0.6, sin θ = 0.8: a rotation by θ
    z2 = torch.stack(moved)
    assert torch.allclose(F.layer_norm(z2, (D,)), z2, atol=1e-4) and not torch.allclose(z2, z, atol=0.1)
    k1, k2 = net._key_context(z.float()), net._key_context(z2.float())
    assert torch.allclose(k1, k2, atol=1e-4)
    assert not torch.allclose(net.context_norm(z.float()), net.context_norm(z2.float()), atol=0.1)
    # and the network's output moves only through the values: with values held, keys' change alone changes nothing
    block = next(m for m in net.modules() if type(m).__name__ == "CrossAttention")
    h = torch.randn(1, block.q.in_channels, 4, 4)
    v = net.context_norm(z.float())[None]
    assert torch.allclose(block(h, (v, k1[None])), block(h, (v, k2[None])), atol=1e-5)
    assert not torch.allclose(block(h, (v, k1[None])), block(h, (net.context_norm(z2.float())[None], k2[None])),
                              atol=1e-4)


def test_bad_key_ranks_get_one_clear_line():
    with pytest.raises(UserError, match="text-key-rank must be ≥ 0"):
        TrainConfig(text_encoder="all-MiniLM-L6-v2", text_key_rank=-1).validate()
    with pytest.raises(UserError, match="pass --text-encoder"):
        TrainConfig(text_key_rank=8).validate()
    with pytest.raises(UserError, match="use it without them"):
        TrainConfig(text_encoder="all-MiniLM-L6-v2", text_key_rank=8, text_layers=1).validate()
    with pytest.raises(ValueError, match=r"must be in 0\.\.48"):
        key_net(49)
    assert main(["train", "--dataset", "mnist", "--text-key-rank", "-2"]) == 2


def test_a_run_fits_its_basis_on_its_captions_saves_it_and_samples(tmp_path, capsys):
    tc = TrainConfig(dataset="mnist", preset="micro", steps=2, batch_size=2, sample_every=100, save_every=100,
                     sample_n=1, sample_steps=2, text_encoder="all-MiniLM-L6-v2", text_key_rank=8)
    trainer = Trainer(tmp_path / "run", RunConfig(diffusion=DiffusionConfig(num_timesteps=20), train=tc),
                      progress=False)
    bank = trainer.captions.cond
    trainer.train()
    expected = key_net(8).__class__(trainer.config.model)
    expected.fit_key_basis(bank.tokens[bank.mask])
    pipe = ddpmkit.load(tmp_path / "run")                       # the EMA weights
    for got in (pipe.model, ddpmkit.load(tmp_path / "run", weights="model").model):
        assert torch.allclose(got.key_basis @ got.key_basis.T, expected.key_basis @ expected.key_basis.T, atol=1e-4)
        assert torch.allclose(got.key_mean, expected.key_mean, atol=1e-5)
    assert len(pipe("a handwritten seven", n=1, steps=2, seed=0)) == 1
    assert main(["info", str(tmp_path / "run")]) == 0
    assert "keys through rank 8" in capsys.readouterr().out
