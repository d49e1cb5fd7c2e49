import pytest
import torch
from types import SimpleNamespace

from ddpmkit import UNet, UNetConfig
from ddpmkit.nn import count_parameters


def test_cifar10_preset_has_the_papers_parameter_count():
    n = count_parameters(UNet.from_preset("ddpm-cifar10"))
    assert abs(n - 35.7e6) <= 0.1e6, n


def test_256_preset_is_about_114m():
    n = count_parameters(UNet.from_preset("ddpm-256"))
    assert abs(n - 114e6) <= 1e6, n


def test_parameter_count_equals_diffusers_ddpm_cifar10():
    """The same architecture in diffusers (google/ddpm-cifar10-32's config) has exactly as many weights."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                                block_out_channels=(128, 256, 256, 256),
                                down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                                norm_num_groups=32, attention_head_dim=None)
    assert count_parameters(UNet.from_preset("ddpm-cifar10")) == count_parameters(ref)


@pytest.mark.parametrize("channels,h,w", [(1, 28, 28), (3, 32, 32), (4, 16, 24), (3, 8, 40)])
def test_any_channels_and_sizes_divisible_by_the_downsampling(channels, h, w):
    net = UNet(UNetConfig(image_size=h, in_channels=channels, base_channels=16, channel_mults=(1, 2, 2),
                          num_res_blocks=1, attention_resolutions=(h // 2,), groups=8))
    x = torch.randn(2, channels, h, w)
    assert net(x, torch.tensor([0, 999])).shape == (2, channels, h, w)


def test_learned_sigma_doubles_the_output_channels():
    net = UNet.from_preset("micro", learn_sigma=True)
    assert net(torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])).shape == (3, 2, 8, 8)


def test_zero_initialised_output_and_time_dependence():
    net = UNet.from_preset("micro")
    x = torch.randn(2, 1, 8, 8)
    assert net(x, torch.tensor([5, 5])).abs().max() == 0        # zero-initialised final conv
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    for block in net.modules():
        if hasattr(block, "conv2"):
            torch.nn.init.normal_(block.conv2.weight, std=0.1)
    a, b = net(x, torch.tensor([5, 5])), net(x, torch.tensor([500, 500]))
    assert not torch.allclose(a, b)                              # the time embedding reaches the output


def test_size_the_network_cannot_take_is_a_clear_error():
    net = UNet.from_preset("mnist-tiny")
    with pytest.raises(ValueError, match="not divisible by 4"):
        net(torch.randn(1, 1, 30, 30), torch.tensor([0]))


def test_padded_tokens_change_nothing_in_cross_attention():
    torch.manual_seed(0)
    net = UNet(UNetConfig(image_size=8, in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                          attention_resolutions=(4,), groups=4, context_dim=6, pooled_dim=6)).eval()
    for p in net.parameters():                                   # make every path non-trivial
        torch.nn.init.normal_(p, std=0.2)
    tokens = torch.randn(2, 5, 6)
    mask = torch.tensor([[True, True, False, False, False], [True, True, True, False, False]])
    pooled = torch.randn(2, 6)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    out1 = net(x, t, SimpleNamespace(tokens=tokens, mask=mask, pooled=pooled))
    tokens2 = torch.where(mask[..., None], tokens, torch.randn(2, 5, 6) * 100)
    out2 = net(x, t, SimpleNamespace(tokens=tokens2, mask=mask, pooled=pooled))
    assert torch.allclose(out1, out2, atol=1e-5)
    tokens3 = tokens.clone()
    tokens3[0, 0, 0] += 1.0                                     # a real token does matter
    out3 = net(x, t, SimpleNamespace(tokens=tokens3, mask=mask, pooled=pooled))
    assert not torch.allclose(out1, out3, atol=1e-4)


def test_scale_shift_preset_matches_diffusers_parameter_count():
    """AdaGN ResBlocks (Nichol & Dhariwal) have diffusers' resnet_time_scale_shift="scale_shift" weights, except
    that diffusers' middle attention then has no GroupNorm (UNetMidBlock2D only passes norm groups for "default"):
    256 weights + 256 biases."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                                block_out_channels=(128, 256, 256, 256),
                                down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                                norm_num_groups=32, attention_head_dim=None, resnet_time_scale_shift="scale_shift")
    assert ref.mid_block.attentions[0].group_norm is None
    assert count_parameters(UNet.from_preset("ddpm-cifar10", scale_shift=True)) == count_parameters(ref) + 2 * 256


def test_scale_shift_resblock_applies_norm_times_one_plus_scale_plus_shift():
    from ddpmkit.nn.layers import ResBlock
    torch.manual_seed(0)
    block = ResBlock(8, 8, 16, dropout=0.0, groups=4, scale_shift=True)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x, emb = torch.randn(2, 8, 5, 5), torch.randn(2, 16)
    h = block.conv1(torch.nn.functional.silu(block.norm1(x)))
    scale, shift = block.emb(torch.nn.functional.silu(emb)).chunk(2, dim=1)
    h = block.norm2(h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    expected = x + block.conv2(torch.nn.functional.silu(h))
    torch.testing.assert_close(block(x, emb), expected)
    additive = ResBlock(8, 8, 16, dropout=0.0, groups=4)
    assert additive.emb.out_features == 8 and block.emb.out_features == 16


def test_default_preset_follows_the_data():
    from ddpmkit.train import default_preset
    assert default_preset(SimpleNamespace(shape=(1, 28, 28))) == "mnist-tiny"
    assert default_preset(SimpleNamespace(shape=(3, 32, 32))) == "tiny-32"
    net = UNet.from_preset("tiny-32", context_dim=16, pooled_dim=16).eval()
    seen = []
    for m in net.modules():
        if type(m).__name__ == "AttentionBlock":
            m.register_forward_hook(lambda mod, inp, out: seen.append(tuple(out.shape[-2:])))
    cond = SimpleNamespace(tokens=torch.randn(2, 3, 16), mask=torch.ones(2, 3, dtype=torch.bool),
                           pooled=torch.randn(2, 16), is_null=torch.zeros(2, dtype=torch.bool))
    assert net(torch.randn(2, 3, 32, 32), torch.tensor([1, 500]), cond).shape == (2, 3, 32, 32)
    # cross-attention at 16×16 (1 down, 2 up) and 8×8 (1 down, middle, 2 up)
    assert sorted(seen) == [(8, 8)] * 4 + [(16, 16)] * 3


@pytest.mark.parametrize("h, w", [(5, 7), (1, 1), (14, 14)])
def test_upsample_is_nearest_then_conv3x3_exactly_values_and_gradients(h, w):
    import torch.nn.functional as F
    from ddpmkit.nn.layers import Upsample
    torch.manual_seed(0)
    up = Upsample(6).double()
    x = torch.randn(2, 6, h, w, dtype=torch.double, requires_grad=True)
    ours = up(x)
    ref = up.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    assert ours.shape == (2, 6, 2 * h, 2 * w)
    assert torch.allclose(ours, ref, atol=1e-12)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ours, [x, up.conv.weight, up.conv.bias], g),
                    torch.autograd.grad(ref, [x, up.conv.weight, up.conv.bias], g)):
        assert torch.allclose(a, b, atol=1e-11)
