"""The frozen text encoder: offline loading of the bundled all-MiniLM-L6-v2, determinism, padding, truncation,
prompt validation and the prompt cache. The model loads once for the module (a few seconds on 2 cores)."""
import os
import socket
import warnings

import pytest
import torch

from ddpmkit.text import EncoderLoadError, TextEncoder, masked_mean


HUB_OFFLINE_AT_START = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _no_network(*args, **kwargs):
    raise AssertionError("the text encoder tried to open a network connection")


@pytest.fixture(scope="module")
def encoder():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        mp.delenv("TRANSFORMERS_OFFLINE", raising=False)
        enc = TextEncoder()
        assert "HF_HUB_OFFLINE" not in os.environ   # the offline switch is scoped to loading
    import huggingface_hub.constants
    assert huggingface_hub.constants.HF_HUB_OFFLINE == HUB_OFFLINE_AT_START   # and did not stick to the process
    return enc


def test_default_encoder_loads_offline_as_minilm(encoder):
    assert (encoder.name, encoder.dim, encoder.pooled_dim, encoder.max_length) == ("all-MiniLM-L6-v2", 384, 384, 256)
    c = encoder(["a red circle", "a blue square on the left"])
    assert c.tokens.shape == (2, 8, 384) and c.mask.dtype == torch.bool and c.pooled.shape == (2, 384)
    assert torch.equal(c.mask.sum(1), torch.tensor([5, 8]))   # [CLS] a red circle [SEP]; the second has 8 tokens


def test_same_prompt_gives_identical_tensors_and_different_prompts_differ(encoder):
    encoder.clear_cache()
    a = encoder(["a handwritten seven"])
    encoder.clear_cache()
    b = encoder(["a handwritten seven"])
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.pooled, b.pooled)
    c = encoder(["a handwritten three"])
    assert not torch.allclose(a.pooled, c.pooled, atol=1e-3)


def test_pooled_is_minilm_mean_pooling_and_ignores_padding(encoder):
    encoder.clear_cache()
    alone = encoder(["a red circle"])
    encoder.clear_cache()
    padded = encoder(["a red circle", "a small green triangle at the bottom, below a large red square"])
    assert padded.length > alone.length and not padded.mask[0, alone.length:].any()
    assert torch.allclose(padded.pooled[0], alone.pooled[0], atol=1e-5)
    assert torch.allclose(padded.tokens[0, : alone.length], alone.tokens[0], atol=1e-5)
    assert torch.equal(padded.tokens[0, alone.length:], torch.zeros_like(padded.tokens[0, alone.length:]))
    # the model's own pooling (sentence-transformers: mean of real tokens, then L2-normalise), whatever padding holds
    garbage = padded.tokens.masked_fill(~padded.mask[..., None], 50.0)
    mean = torch.nn.functional.normalize(masked_mean(garbage, padded.mask), dim=-1)
    assert torch.allclose(mean, padded.pooled, atol=1e-5)
    longer = padded.pad_to(padded.length + 9)
    assert torch.equal(longer.pooled, padded.pooled) and not longer.mask[:, padded.length:].any()


def test_empty_prompt_is_marked_null(encoder):
    c = encoder(["", "a red circle", "  "])
    assert c.is_null.tolist() == [True, False, True]
    assert c.mask[0].sum() >= 1   # still real encoder states: a network may use them or its learned null embedding


def test_long_prompt_is_truncated_with_a_warning(encoder):
    with pytest.warns(UserWarning, match=r"truncated to the text encoder's 256"):
        c = encoder(["a red circle " * 100])
    assert c.length == 256 and bool(c.mask.all())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder(["a red circle"])   # a short prompt does not warn


@pytest.mark.parametrize("bad", [[1], ["ok", None], None, 7, [b"bytes"], []])
def test_prompt_that_is_not_text_raises_one_clear_line(encoder, bad):
    with pytest.raises(ValueError) as info:
        encoder(bad)
    msg = str(info.value)
    assert "\n" not in msg and ("str" in msg or "prompt" in msg)


def test_repeated_prompts_are_embedded_once(encoder, monkeypatch):
    encoder.clear_cache()
    calls = []
    real = encoder._embed
    monkeypatch.setattr(encoder, "_embed", lambda prompts, *counts: calls.append(list(prompts)) or real(prompts, *counts))
    first = encoder(["a red circle", "a red circle", "a blue square"])
    assert calls == [["a red circle", "a blue square"]]
    again = encoder(["a blue square", "a red circle"])
    assert len(calls) == 1
    assert torch.equal(again.pooled[1], first.pooled[0]) and torch.equal(again.pooled[0], first.pooled[2])
    assert torch.equal(first.tokens[0], first.tokens[1])


def test_cache_evicts_least_recently_used(encoder, monkeypatch):
    encoder.clear_cache()
    monkeypatch.setattr(encoder, "cache_size", 2)
    encoder(["one"]); encoder(["two"]); encoder(["one"]); encoder(["three"])   # "two" is the oldest now
    calls = []
    real = encoder._embed
    monkeypatch.setattr(encoder, "_embed", lambda prompts, *counts: calls.append(list(prompts)) or real(prompts, *counts))
    encoder(["one", "three", "two"])
    assert calls == [["two"]]


def test_missing_folder_or_uncached_name_fails_in_one_line_without_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    with pytest.raises(EncoderLoadError, match="does not exist") as info:
        TextEncoder("./no/such/encoder")
    assert "\n" not in str(info.value)
    with pytest.raises(EncoderLoadError, match="local model folder") as info:
        TextEncoder("nobody-here/not-a-real-encoder", local_files_only=True)
    assert "\n" not in str(info.value)


def test_plain_hugging_face_backend_loads_a_local_folder(encoder):
    from ddpmkit.text import default_model_path
    hf = TextEncoder(str(default_model_path()), backend="transformers", cache_size=0)
    prompts = ["a red circle", "a handwritten seven on the left"]
    c, ref = hf(prompts), encoder(prompts)
    assert torch.allclose(c.tokens, ref.tokens, atol=1e-4) and torch.equal(c.mask, ref.mask)
    assert torch.allclose(torch.nn.functional.normalize(c.pooled, dim=-1), ref.pooled, atol=1e-5)
    assert not torch.allclose(c.pooled.norm(dim=-1), torch.ones(2))   # plain mean pooling, no normalisation


def test_token_states_from_an_inner_layer_are_that_hidden_state_and_pooled_is_unchanged(encoder):
    """``layer=k`` reads the hidden state after k transformer layers (what Stable Diffusion 2 does with CLIP's
    penultimate layer); the pooled vector stays the sentence embedding; -1 and 6 are the default for MiniLM's 6 layers;
    both backends agree with the Hugging Face model's own ``hidden_states``."""
    from transformers import AutoModel, AutoTokenizer

    from ddpmkit.text import default_model_path
    prompts = ["a red circle left of a blue square", "hi"]
    ref = encoder(prompts)
    path = str(default_model_path())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tok(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states
    assert len(hidden) == 7
    for layer in (0, 3, -4):
        for backend in ("sentence-transformers", "transformers"):
            enc = TextEncoder(layer=layer, backend=backend, cache_size=0)
            c = enc(prompts)
            assert enc.layer == layer % 7 and enc.num_layers == 6
            assert torch.allclose(c.tokens, hidden[layer] * c.mask[..., None], atol=1e-5)
            if backend == "sentence-transformers":
                assert torch.equal(c.pooled, ref.pooled) and torch.equal(c.mask, ref.mask)
        assert not torch.allclose(c.tokens, ref.tokens, atol=1e-2)
    for last in (-1, 6):
        enc = TextEncoder(layer=last, cache_size=0)
        assert enc.layer is None and torch.equal(enc(prompts).tokens, ref.tokens)


def test_several_layers_are_their_hidden_states_concatenated_along_the_features(encoder):
    """``layer=(3, -1)`` gives [layer-3 states | last-layer states] (SDXL concatenates two encoders' states so);
    one layer in a list is that layer; a state named twice is one line."""
    prompts = ["a red circle beneath a blue square", "hi"]
    both = TextEncoder(layer=[3, -1], cache_size=0)
    three = TextEncoder(layer=3, cache_size=0)
    # the last layer from an uncached encoder too: the shared fixture may hold these prompts from an earlier test,
    # embedded in another batch whose padding changes the float rounding, not the states this test compares
    c, c3, last = both(prompts), three(prompts), TextEncoder(cache_size=0)(prompts)
    assert both.layer == (3, 6) and both.dim == 2 * encoder.dim
    assert torch.equal(c.tokens, torch.cat([c3.tokens, last.tokens], dim=-1))
    assert torch.equal(c.mask, last.mask) and torch.equal(c.pooled, last.pooled)
    assert TextEncoder(layer=[3], cache_size=0).layer == 3
    with pytest.raises(EncoderLoadError, match="twice") as info:
        TextEncoder(layer=(3, -4))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("layer", [7, -8, [3, 7]])
def test_a_layer_the_encoder_lacks_is_one_line(layer):
    with pytest.raises(EncoderLoadError, match="out of range") as info:
        TextEncoder(layer=layer)
    assert "\n" not in str(info.value) and "0 (embeddings) to 6" in str(info.value)


def test_many_prompts_are_embedded_in_passes_of_like_length(encoder, monkeypatch):
    """Filling the cache in several passes sorts the prompts by token count (a caption bank pads little), and each
    prompt's states are the ones it gets on its own."""
    encoder.clear_cache()
    monkeypatch.setattr(encoder, "batch_size", 2)
    prompts = ["a small red circle to the left of a large blue square", "one", "a red circle on the left",
               "two", "a cyan square", "a yellow triangle above a green circle"]
    calls = []
    real = encoder._embed
    monkeypatch.setattr(encoder, "_embed", lambda ps, *counts: calls.append(list(ps)) or real(ps, *counts))
    together = encoder(prompts)
    lengths = [encoder._backend.count_tokens(c) for c in calls]
    assert [len(c) for c in calls] == [2, 2, 2]
    assert all(max(a) <= min(b) for a, b in zip(lengths, lengths[1:]))
    encoder.clear_cache()
    for i, p in enumerate(prompts):
        alone = encoder([p])
        n = int(alone.mask.sum())
        assert torch.allclose(together.tokens[i, :n], alone.tokens[0, :n], atol=1e-5)
        assert torch.allclose(together.pooled[i], alone.pooled[0], atol=1e-5)
