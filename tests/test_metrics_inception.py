"""The Inception-v3 FID path end to end with a randomly initialised network saved in the real weights' file format
(torch.save of torch-fidelity's state dict): the plumbing only — real numbers need the real 2015-12-05 weights."""
from unittest import mock

import pytest
import torch

fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")

from ddpmkit.metrics import InceptionWeightsError, evaluate_images, fid_from_features, inception_features  # noqa: E402
from ddpmkit.metrics.inception import check_state_dict_file  # noqa: E402


def _no_download(*args, **kwargs):
    raise AssertionError("a download was attempted")


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A random Inception-v3 state dict in the file format of pt_inception-2015-12-05-6726825d.pth
    (see torch-fidelity's utils/util_convert_inception_weights.py)."""
    with torch.random.fork_rng(), \
            mock.patch.object(fidelity, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(fidelity.FeatureExtractorInceptionV3, "load_state_dict"):
        torch.manual_seed(0)
        net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        for m in net.modules():       # He init keeps pool3 features O(1) (the default init shrinks them to ~1e-8)
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    # torch-fidelity's converter saves a plain dict of conv/BN/fc tensors (no BN num_batches_tracked) with torch.save
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    fake = (torch.rand(2, 1, 28, 28, generator=g) * 2 - 1).clamp(-1, 0.5)
    return real, fake


def test_inception_fid_end_to_end_matches_torchmetrics(random_weights, digits):
    tm_fid = pytest.importorskip("torchmetrics.image.fid")
    real, fake = digits
    with mock.patch.object(fidelity, "load_state_dict_from_url", _no_download), \
            mock.patch("torch.hub.load_state_dict_from_url", _no_download):
        ours = evaluate_images(fake, reference=real, metrics=("fid",), feature="inception",
                               inception_weights=random_weights)
        # torchmetrics' FID network: 3-channel uint8 images, TF1-compatible bilinear resize to 299 (antialias off)
        net = tm_fid.NoTrainInceptionV3("inception-v3-compat", ["2048"], str(random_weights), antialias=False)
        to_uint8 = lambda x: ((x + 1) * 127.5).round().to(torch.uint8).expand(-1, 3, -1, -1)   # noqa: E731
        want_real, want_fake = net(to_uint8(real)), net(to_uint8(fake))
    assert ours["feature"] == "inception" and ours["n"] == 2 and ours["n_reference"] == 2
    assert ours["standard_inception_weights"] is False
    rgb = inception_features(real.expand(-1, 3, -1, -1), random_weights)      # RGB input; FID above used gray
    assert rgb.shape == (2, 2048) and rgb.dtype == torch.float32
    assert torch.allclose(rgb, want_real, rtol=1e-5, atol=1e-6)
    assert want_real.abs().mean() > 0.01                      # features are not vanishing: the check has teeth
    assert ours["fid"] > 0
    assert ours["fid"] == pytest.approx(fid_from_features(want_real, want_fake), rel=1e-5)


@pytest.mark.parametrize("weights", [None, "/nonexistent/pt_inception-2015-12-05-6726825d.pth"])
def test_missing_weights_file_is_one_clear_line(weights):
    x = torch.zeros(4, 1, 28, 28)
    with mock.patch.object(fidelity, "load_state_dict_from_url", _no_download), \
            pytest.raises(InceptionWeightsError) as err:
        evaluate_images(x, reference=x, feature="inception", inception_weights=weights)
    message = str(err.value)
    assert "\n" not in message
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "inception_weights=PATH" in message
    assert "no download" in message
    assert isinstance(err.value, ValueError)


def test_a_file_that_is_not_weights_is_a_clear_error(tmp_path):
    bad = tmp_path / "inception.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(InceptionWeightsError, match="not a PyTorch state dict"):
        inception_features(torch.zeros(1, 1, 28, 28), bad)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(InceptionWeightsError, match="does not hold Inception-v3"):
        inception_features(torch.zeros(1, 1, 28, 28), wrong)


def test_both_torch_save_formats_pass_the_safe_load_check(tmp_path):
    state = {"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}
    torch.save(state, tmp_path / "zip.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)   # pre-1.6 files
    check_state_dict_file(tmp_path / "zip.pth")
    check_state_dict_file(tmp_path / "legacy.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(InceptionWeightsError, match="not a dict of tensors"):
        check_state_dict_file(tmp_path / "list.pth")
