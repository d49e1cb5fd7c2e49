"""Text conditioning end to end: null prompt, guidance, caption dropout, training and sampling with a real encoder."""
import warnings

import pytest
import torch

import ddpmkit
from ddpmkit import Denoiser, UNet, UNetConfig, schedules
from ddpmkit.conditioning import CaptionBank
from ddpmkit.config import DiffusionConfig, RunConfig, TrainConfig
from ddpmkit.errors import UserError
from ddpmkit.guidance import guided, null_like
from ddpmkit.nn.layers import AttentionBlock
from ddpmkit.samplers import SAMPLERS, sample
from ddpmkit.text import TextEncoder
from ddpmkit.train import Trainer


@pytest.fixture(scope="module")
def enc():
    return TextEncoder()


def text_net(enc, learn_sigma=False, text_layers=0, randomise=True, text_positions=False, cross_attention="joint"):
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                          attention_resolutions=(4,), groups=4, dropout=0.0, learn_sigma=learn_sigma,
                          context_dim=enc.dim, pooled_dim=enc.pooled_dim, text_layers=text_layers,
                          text_positions=text_positions, cross_attention=cross_attention)).eval()
    for p in net.parameters() if randomise else ():
        torch.nn.init.normal_(p, std=0.1)
    return net


@torch.no_grad()
@pytest.mark.parametrize("learn_sigma", [False, True])
def test_guidance_scale_zero_is_unconditional_and_one_is_conditional(enc, learn_sigma):
    net = text_net(enc, learn_sigma)
    den = Denoiser(net, schedules.linear(100), variance="learned" if learn_sigma else "fixed_small")
    cond = enc(["a handwritten 7", "the digit three"])
    unc = null_like(cond)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 80])
    c, u = net(x, t, cond), net(x, t, unc)
    assert not torch.allclose(c, u)
    assert torch.equal(guided(den, 1.0, unc)(x, t, cond), c)
    assert torch.equal(guided(den, 0.0, unc)(x, t, cond), u)
    g = guided(den, 3.0, unc)(x, t, cond)
    assert torch.allclose(g[:, :1], u[:, :1] + 3.0 * (c[:, :1] - u[:, :1]), atol=1e-5)
    if learn_sigma:     # only the prediction channels are guided; the variance comes from the conditional branch
        assert torch.allclose(g[:, 1:], c[:, 1:], atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("text_layers,cross_attention", [(0, "joint"), (1, "joint"), (0, "separate")])
def test_empty_prompt_means_the_learned_null_prompt(enc, text_layers, cross_attention):
    net = text_net(enc, text_layers=text_layers, cross_attention=cross_attention)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 60])
    empty = enc(["", "  "])
    assert bool(empty.is_null.all())
    assert torch.allclose(net(x, t, empty), net(x, t, None), atol=1e-6)
    assert not torch.allclose(net(x, t, enc(["a handwritten 2", "a handwritten 2"])), net(x, t, None), atol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("text_layers,text_positions,cross_attention",
                         [(0, False, "joint"), (2, False, "joint"), (0, True, "joint"), (1, True, "joint"),
                          (0, False, "separate"), (0, True, "separate")])
def test_padding_the_prompt_changes_nothing(enc, text_layers, text_positions, cross_attention):
    net = text_net(enc, text_layers=text_layers, text_positions=text_positions, cross_attention=cross_attention)
    cond = enc(["a red circle above a blue square", "a 4"])
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 500])
    padded = cond.pad_to(cond.length + 9)
    padded.tokens[~padded.mask] = 7.0          # whatever padding holds
    assert torch.allclose(net(x, t, cond), net(x, t, padded), atol=1e-6)


@torch.no_grad()
def test_text_layers_start_as_identity_then_transform_the_states(enc):
    net = text_net(enc, text_layers=1, randomise=False)
    cond = enc(["a red circle left of a blue square"])
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([40])
    with_layers = net(x, t, cond)
    layers, net.text_layers = net.text_layers, None
    assert torch.equal(with_layers, net(x, t, cond))     # zero-initialised output projections: identity at start
    net.text_layers = layers
    for p in layers.parameters():
        torch.nn.init.normal_(p, std=0.1)
    states = net.text_layers(cond.tokens, src_key_padding_mask=~cond.mask.bool())
    assert states.shape == cond.tokens.shape and not torch.allclose(states, cond.tokens, atol=1e-3)
    with pytest.raises(ValueError, match="needs a text model"):
        UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), groups=4, text_layers=1))


@torch.no_grad()
@pytest.mark.parametrize("cross_attention", ["joint", "separate"])
def test_cross_attention_reads_token_order_only_through_text_positions(enc, cross_attention):
    cond = enc(["a red circle left of a blue square", "a 4"])
    real = int(cond.mask[0].sum())
    tokens = cond.tokens.clone()
    tokens[0, 1:real - 1] = tokens[0, 1:real - 1].flip(0)      # the first prompt's words reversed in place
    shuffled = cond._replace(tokens=tokens)
    assert not torch.equal(shuffled.tokens[0], cond.tokens[0]) and torch.equal(shuffled.tokens[1], cond.tokens[1])
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([7, 300])

    def net(**kw):       # text weighs in the output: unit LayerNorm gain, larger key/value projections
        n = text_net(enc, cross_attention=cross_attention, **kw)
        torch.nn.init.ones_(n.context_norm.weight)
        for m in n.modules():
            if isinstance(m, AttentionBlock):
                torch.nn.init.normal_((m.cross.kv if m.cross is not None else m.context_kv).weight, std=1.0)
        return n

    for text_layers in (0, 1):             # the adapter has no positions of its own: order-blind too
        blind = net(text_layers=text_layers)
        a, b = blind(x, t, cond), blind(x, t, shuffled)
        assert (a - b).abs().max() < 1e-6 * a.abs().max() + 1e-7
    for text_layers in (0, 1):             # positions enter before the adapter: it sees the order too
        seeing = net(text_positions=True, text_layers=text_layers)
        a, b = seeing(x, t, cond), seeing(x, t, shuffled)
        assert (a[0] - b[0]).abs().max() > 0.01 * a.abs().max() and torch.allclose(a[1], b[1], atol=1e-6)


def test_text_positions_start_at_zero_and_learn(enc):
    net = text_net(enc, text_positions=True).train()
    torch.nn.init.zeros_(net.text_pos.weight)
    torch.nn.init.zeros_(net.text_pos.bias)             # as constructed (text_net randomised it)
    assert torch.equal(text_net(enc, text_positions=True, randomise=False).text_pos.weight, net.text_pos.weight)
    cond = enc(["a red circle above a blue square"])
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([40])
    with torch.no_grad():
        pos, net.text_pos = net.text_pos, None
        without = net(x, t, cond)
        net.text_pos = pos
        assert torch.equal(net(x, t, cond), without)     # zero-initialised: the untrained model ignores positions
    net(x, t, cond).square().mean().backward()
    assert net.text_pos.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs a text model"):
        UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), groups=4,
                        text_positions=True))


def test_caption_dropout_happens_at_the_configured_rate(enc):
    bank = CaptionBank(enc, [["a handwritten 1", "the digit one"], ["a handwritten 2"], [""]])
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor([0, 1] * 10000)
    assert bank.draw(idx, g, dropout=0.0).is_null.sum() == 0
    rate = bank.draw(idx, g, dropout=0.1).is_null.float().mean().item()
    assert rate == pytest.approx(0.1, abs=0.006)                     # 20,000 draws: 3 standard errors ≈ 0.0064
    assert bool(bank.draw(torch.tensor([2] * 50), g, dropout=0.0).is_null.all())   # "" is always the null prompt
    picks = bank.draw(torch.zeros(2000, dtype=torch.long), g).pooled
    one = enc(["a handwritten 1"]).pooled
    share = torch.isclose(picks, one).all(dim=1).float().mean().item()
    assert 0.45 < share < 0.55                                       # alternatives drawn uniformly
    firsts = bank.draw(torch.zeros(200, dtype=torch.long), g, first_only=True).pooled
    assert torch.isclose(firsts, one).all()                          # the curriculum phase: first caption only


def test_first_caption_curriculum_draws_the_same_randomness(enc):
    """``first_only`` changes which caption is read, not the generator's stream (dropout and later draws agree)."""
    bank = CaptionBank(enc, [["a handwritten 1", "the digit one"], ["a handwritten 2", "the digit two"]])
    idx = torch.tensor([0, 1] * 500)
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = bank.draw(idx, ga, dropout=0.3), bank.draw(idx, gb, dropout=0.3, first_only=True)
    assert torch.equal(a.is_null, b.is_null) and not torch.equal(a.pooled, b.pooled)
    assert torch.equal(torch.rand(4, generator=ga), torch.rand(4, generator=gb))


def test_text_noise_perturbs_real_tokens_by_the_feature_std_and_never_padding(enc):
    captions = [["a handwritten 1"], ["the digit seven, written large"], ["a handwritten 2"]]
    bank = CaptionBank(enc, captions)
    real = bank.cond.tokens[bank.cond.mask]
    assert torch.allclose(bank.token_std, real.std(0))
    idx = torch.tensor([0, 1, 2] * 2000)
    clean = bank.draw(idx, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    noisy = bank.draw(idx, g, noise=0.5)
    assert torch.equal(noisy.is_null, clean.is_null) and torch.equal(noisy.mask, clean.mask)
    assert torch.equal(noisy.tokens[~noisy.mask], clean.tokens[~clean.mask])       # padding stays exactly zero
    live = bank.token_std > 1e-3                        # (three MiniLM features are constant here: std < 1e-8)
    moved = (noisy.tokens[noisy.mask][:, live] != clean.tokens[clean.mask][:, live]).float().mean()
    assert moved > 0.9999                 # (a draw below half an ulp of the state rounds away: ~1e-6 of them)
    z = ((noisy.tokens - clean.tokens)[noisy.mask] / bank.token_std)[:, live]       # standard normal per feature
    assert z.mean().abs() < 0.01 and z.std().item() == pytest.approx(0.5, rel=0.01)
    zp = (noisy.pooled - clean.pooled) / bank.pooled_std
    assert zp.std().item() == pytest.approx(0.5, rel=0.02)
    assert torch.equal(bank.draw(idx, torch.Generator().manual_seed(5), noise=0.0).tokens, clean.tokens)
    with pytest.raises(UserError, match="text-noise must be"):
        TrainConfig(text_encoder="all-MiniLM-L6-v2", text_noise=-0.1).validate()
    with pytest.raises(UserError, match="pass --text-encoder"):
        TrainConfig(text_noise=0.1).validate()


def test_token_dropout_hides_tokens_at_the_rate_but_never_the_first_nor_the_pooled_vector(enc):
    bank = CaptionBank(enc, [["a handwritten 1"], ["the digit seven, written large"]])
    idx = torch.tensor([0, 1] * 3000)
    clean = bank.draw(idx, torch.Generator().manual_seed(2), dropout=0.1)
    g = torch.Generator().manual_seed(2)
    hidden = bank.draw(idx, g, dropout=0.1, token_dropout=0.25)
    assert torch.equal(hidden.tokens, clean.tokens) and torch.equal(hidden.pooled, clean.pooled)
    assert torch.equal(hidden.is_null, clean.is_null)                        # caption dropout draws as before
    assert bool(hidden.mask[:, 0].all()) and not bool((hidden.mask & ~clean.mask).any())   # padding stays padding
    later = clean.mask.clone()
    later[:, 0] = False
    rate = (later & ~hidden.mask).sum() / later.sum()
    assert rate.item() == pytest.approx(0.25, abs=0.01)                    # ~36,000 tokens: 3 s.e. ≈ 0.007
    again = bank.draw(idx, torch.Generator().manual_seed(2), dropout=0.1, token_dropout=0.0)
    assert torch.equal(again.mask, clean.mask)                               # 0: the stream of a plain draw
    with pytest.raises(UserError, match=r"token-dropout must be in \[0, 1\)"):
        TrainConfig(text_encoder="all-MiniLM-L6-v2", token_dropout=1.0).validate()
    with pytest.raises(UserError, match="pass --text-encoder"):
        TrainConfig(token_dropout=0.2).validate()


@torch.no_grad()
@pytest.mark.parametrize("cross_attention", ["joint", "separate"])
def test_a_hidden_token_is_the_same_as_a_token_left_out(enc, cross_attention):
    net = text_net(enc, cross_attention=cross_attention)
    cond = enc(["a small red circle on the left"])
    keep = torch.ones(cond.length, dtype=torch.bool)
    keep[2] = False                                                          # the word "small"
    hidden = cond._replace(mask=cond.mask & keep)
    left_out = cond._replace(tokens=cond.tokens[:, keep], mask=cond.mask[:, keep])
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([5])
    assert torch.allclose(net(x, t, hidden), net(x, t, left_out), atol=1e-6)
    assert not torch.allclose(net(x, t, hidden), net(x, t, cond), atol=1e-4)


def test_too_long_prompt_warns_and_non_text_is_one_clear_line(enc):
    with pytest.warns(UserWarning):
        enc(["digit " * 600])
    with pytest.raises(UserError) as err:
        enc([123])
    assert "\n" not in str(err.value)


@torch.no_grad()
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_guidance_works_through_every_sampler(enc, sampler):
    net = text_net(enc)
    den = Denoiser(net, schedules.linear(100))
    cond = enc(["a handwritten 5"] * 2)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    outs = [sample(guided(den, w, null_like(cond)), x, sampler=sampler, steps=4, cond=cond, clip_x0=False,
                   generator=torch.Generator().manual_seed(1)) for w in (1.0, 4.0)]
    assert torch.isfinite(outs[1]).all() and not torch.allclose(outs[0], outs[1])


@torch.no_grad()
@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_dynamic_thresholding_works_through_every_sampler(enc, sampler):
    """At a large guidance scale the untrained net's x̂_0 leaves [-1, 1]; dynamic thresholding (p = 0.9) must give
    a different, finite result from the static clamp, and the final image stays in range."""
    net = text_net(enc)
    den = Denoiser(net, schedules.linear(100))
    cond = enc(["a handwritten 5"] * 2)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    outs = [sample(guided(den, 8.0, null_like(cond)), x, sampler=sampler, steps=4, cond=cond, clip_x0=clip,
                   generator=torch.Generator().manual_seed(1)) for clip in (True, 0.9)]
    assert torch.isfinite(outs[1]).all() and not torch.allclose(outs[0], outs[1])


def test_text_to_image_training_sampling_and_cli(tmp_path, capsys):
    tc = TrainConfig(dataset="mnist", preset="micro", steps=3, batch_size=4, sample_every=100, save_every=100,
                     sample_n=2, sample_steps=4, log_every=1, text_encoder="all-MiniLM-L6-v2")
    Trainer(tmp_path / "run", RunConfig(diffusion=DiffusionConfig(num_timesteps=20), train=tc), progress=False).train()
    pipe = ddpmkit.load(tmp_path / "run")
    assert pipe.is_text_model and pipe.model.config.context_dim == 384
    imgs = pipe("a handwritten seven", n=3, steps=4, guidance=3.0, seed=0)
    assert len(imgs) == 3 and imgs[0].size == (28, 28)
    a = pipe.generate("a handwritten seven", n=2, steps=4, seed=0, clip_x0=False)
    assert torch.equal(a, pipe.generate("a handwritten seven", n=2, steps=4, seed=0, clip_x0=False))
    assert not torch.equal(a, pipe.generate("a handwritten seven", n=2, steps=4, seed=0, clip_x0=False,
                                            negative="the digit one"))
    with pytest.raises(UserError):
        pipe.generate(["a 1", "a 2"], n=3)
    for not_text in (123, [4, 5]):
        with pytest.raises(UserError) as err:
            pipe.generate(not_text, n=2, steps=2)
        assert "\n" not in str(err.value)
    from ddpmkit.cli import main
    assert main(["sample", str(tmp_path / "run"), "a handwritten 3", "--n", "2", "--steps", "3",
                 "--out", str(tmp_path / "g.png"), "--guidance", "2"]) == 0
    assert main(["sample", str(tmp_path / "run"), "a handwritten 3", "--n", "2", "--steps", "3",
                 "--out", str(tmp_path / "d.png"), "--dynamic-threshold", "0.995"]) == 0
    assert main(["info", str(tmp_path / "run")]) == 0
    assert "all-MiniLM-L6-v2" in capsys.readouterr().out
    for bad in (["--dynamic-threshold", "1.5"], ["--dynamic-threshold", "0.99", "--no-clip"]):
        assert main(["sample", str(tmp_path / "run"), "a 3", "--n", "1", "--steps", "2",
                     "--out", str(tmp_path / "e.png"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "dynamic-threshold" in err and "\n" not in err
    with pytest.raises(UserError, match="percentile"):
        pipe.generate("a 3", n=1, steps=2, clip_x0=1.5)


@pytest.mark.parametrize("layer, shown", [(3, "token states from layer 3"),
                                          ([3, 6], "token states from layers 3+6, concatenated")])
def test_a_run_trained_on_an_inner_encoder_layer_samples_from_that_layer(tmp_path, capsys, enc, layer, shown):
    tc = TrainConfig(dataset="mnist", preset="micro", steps=1, batch_size=2, sample_every=100, save_every=100,
                     sample_n=1, sample_steps=2, text_encoder="all-MiniLM-L6-v2", text_encoder_layer=layer)
    Trainer(tmp_path / "run", RunConfig(diffusion=DiffusionConfig(num_timesteps=20), train=tc), progress=False).train()
    pipe = ddpmkit.load(tmp_path / "run")
    assert pipe.config.train.text_encoder_layer == layer
    assert pipe.encoder.layer == (tuple(layer) if isinstance(layer, list) else layer)
    prompt = ["a handwritten seven"]
    assert pipe.encoder.dim == enc.dim * (len(layer) if isinstance(layer, list) else 1)
    assert not torch.allclose(pipe.encoder(prompt).tokens[..., :enc.dim], enc(prompt).tokens, atol=1e-2)
    assert len(pipe("a handwritten seven", n=1, steps=2, seed=0)) == 1
    from ddpmkit.cli import main
    assert main(["info", str(tmp_path / "run")]) == 0
    assert shown in capsys.readouterr().out


def test_a_run_with_text_positions_and_no_pooled_vector_round_trips(tmp_path, enc):
    tc = TrainConfig(dataset="mnist", preset="micro", steps=2, batch_size=2, sample_every=100, save_every=100,
                     sample_n=1, sample_steps=2, text_encoder="all-MiniLM-L6-v2", text_positions=True,
                     text_pooled=False)
    Trainer(tmp_path / "run", RunConfig(diffusion=DiffusionConfig(num_timesteps=20), train=tc), progress=False).train()
    pipe = ddpmkit.load(tmp_path / "run")
    net = pipe.model
    assert net.config.text_positions and net.config.pooled_dim is None and net.pooled_proj is None
    assert {"text_pos.weight", "text_pos.bias"} <= set(net.state_dict())
    cond = enc(["a handwritten seven"])
    x, t = torch.randn(1, 1, 8, 8), torch.tensor([9])
    with torch.no_grad():                                            # the pooled vector is not read at all
        assert torch.equal(net(x, t, cond), net(x, t, cond._replace(pooled=torch.randn_like(cond.pooled))))
    assert len(pipe("a handwritten seven", n=1, steps=2, seed=0)) == 1


def test_unconditional_model_refuses_a_prompt(tmp_path):
    tc = TrainConfig(dataset="mnist", preset="micro", steps=1, batch_size=2, sample_every=100, save_every=100,
                     sample_n=1, sample_steps=2)
    Trainer(tmp_path / "run", RunConfig(diffusion=DiffusionConfig(num_timesteps=20), train=tc), progress=False).train()
    with pytest.raises(UserError, match="unconditional"):
        ddpmkit.load(tmp_path / "run").generate("a handwritten 1", n=1, steps=2)


def test_the_shipped_default_model_loads_offline_and_draws():
    pipe = ddpmkit.load()
    assert pipe.is_text_model and pipe.image_shape == (1, 28, 28)
    imgs = pipe("a handwritten seven", n=2, steps=5, seed=0)
    assert len(imgs) == 2 and imgs[0].size == (28, 28)


def test_sample_draws_one_row_per_repeated_prompt(tmp_path, capsys):
    from PIL import Image
    from ddpmkit.cli import main
    out = tmp_path / "rows.png"
    assert main(["sample", "--prompt", "a handwritten 1", "--prompt", "the digit seven", "--prompt", "a 0",
                 "--n", "4", "--steps", "2", "--out", str(out)]) == 0
    assert len(list((tmp_path / "rows").glob("*.png"))) == 12
    w, h = Image.open(out).size
    assert w > h          # 3 rows of 4 tiles (the 4 seeds of each prompt), not a square √12 layout
    singles = [torch.tensor(list(Image.open(tmp_path / "rows" / f"{i:04d}.png").getdata())) for i in (0, 4)]
    assert not torch.equal(*singles)
    assert main(["sample", "x/run", "a 1", "--prompt", "a 2", "--prompt", "a 3", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().startswith("error:")
