"""Timestep and σ grids: every spacing, with step counts that do and do not divide T = 1000."""
import numpy as np
import pytest
import torch

from ddpmkit import Denoiser, schedules
from ddpmkit.samplers import (SAMPLERS, SPACINGS, as_sigmas, as_timesteps, karras_sigmas, make_sigmas, make_timesteps,
                              previous_timesteps, sample, schedule_sigmas, sigma_to_t)

T = 1000
COUNTS = [1, 7, 10, 333, 999, 1000]
S = schedules.linear(T)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("k", COUNTS)
def test_grid_is_strictly_descending_in_range_and_pairs_with_its_successor(spacing, k):
    ts = make_timesteps(S, k, spacing)
    assert ts.dtype == torch.long and ts.shape == (k,)
    assert int(ts.max()) <= T - 1 and int(ts.min()) >= 0
    assert bool((ts[1:] < ts[:-1]).all()), "repeated or ascending timestep"
    prev = previous_timesteps(ts)
    # Each step lands on the next grid point (nothing skipped or repeated) and the last one lands on x_0.
    assert prev[:-1].tolist() == ts[1:].tolist() and int(prev[-1]) == -1
    if k == T:
        assert ts.tolist() == list(range(T - 1, -1, -1))


@pytest.mark.parametrize("k", COUNTS)
def test_spacing_ends(k):
    lead, trail = make_timesteps(S, k, "leading"), make_timesteps(S, k, "trailing")
    lin, kar = make_timesteps(S, k, "linspace"), make_timesteps(S, k, "karras")
    assert int(lead[-1]) == 0 and int(lead[0]) == (k - 1) * (T // k)
    assert int(trail[0]) == T - 1 and int(trail[-1]) == round(T / k) - 1
    assert int(lin[0]) == T - 1 and (int(lin[-1]) == 0 or k == 1)
    assert int(kar[0]) == T - 1 and (int(kar[-1]) == 0 or k == 1)


def test_known_values():
    assert make_timesteps(S, 10, "leading").tolist() == list(range(900, -1, -100))
    assert make_timesteps(S, 10, "trailing").tolist() == list(range(999, 0, -100))
    assert make_timesteps(S, 7, "trailing").tolist() == [999, 856, 713, 570, 428, 285, 142]
    assert make_timesteps(S, 7, "leading").tolist() == [852, 710, 568, 426, 284, 142, 0]
    assert make_timesteps(S, 7, "linspace").tolist() == [999, 832, 666, 500, 333, 166, 0]   # 999·k/6, half to even


@pytest.mark.parametrize("k", [7, 10, 333, 999])
def test_spacings_match_diffusers_conventions(k):
    """The same integer grids as diffusers' DDIMScheduler (trailing, leading with steps_offset=0, linspace)."""
    ratio = T / k
    trailing = np.round(np.arange(T, 0, -ratio)).astype(np.int64) - 1
    if len(trailing) == k:   # diffusers' float arange can produce k + 1 points; our grid is exact
        assert make_timesteps(S, k, "trailing").tolist() == trailing.tolist()
    assert make_timesteps(S, k, "leading").tolist() == (np.arange(0, k) * (T // k))[::-1].tolist()
    assert make_timesteps(S, k, "linspace").tolist() == np.linspace(0, T - 1, k).round()[::-1].astype(int).tolist()


def test_karras_timesteps_follow_the_karras_levels_where_they_can():
    ts = make_timesteps(S, 10, "karras")
    want = sigma_to_t(S, karras_sigmas(float(schedule_sigmas(S)[0]), float(schedule_sigmas(S)[-1]), 10)).round().long()
    assert ts.tolist() == want.tolist()        # few steps: no collisions, plain rounding
    dense = make_timesteps(S, 333, "karras")   # many steps: the crowded low-noise end becomes consecutive
    assert dense[-20:].tolist() == list(range(19, -1, -1))


def test_sigma_to_t_is_exact_on_training_levels_and_monotone_between():
    table = schedule_sigmas(S)
    assert torch.allclose(sigma_to_t(S, table), torch.arange(T, dtype=torch.float64), atol=1e-9)
    mid = (table[:-1].log() + table[1:].log()).mul(0.5).exp()     # geometric midpoints: half-way in log σ
    assert torch.allclose(sigma_to_t(S, mid), torch.arange(T - 1, dtype=torch.float64) + 0.5, atol=1e-9)
    assert float(sigma_to_t(S, torch.tensor(1e6))) == T - 1 and float(sigma_to_t(S, torch.tensor(1e-6))) == 0


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("k", COUNTS)
def test_sigma_grids(spacing, k):
    sig = make_sigmas(S, k, spacing)
    table = schedule_sigmas(S)
    assert sig.shape == (k + 1,) and float(sig[-1]) == 0.0
    assert bool((sig[1:] < sig[:-1]).all())
    if spacing == "karras":
        assert abs(float(sig[0]) - float(table[-1])) < 1e-9
        if k > 1:
            assert abs(float(sig[-2]) - float(table[0])) < 1e-12
            # EDM eq. (5): σ^{1/ρ} is linear in the step index
            root = sig[:-1] ** (1 / 7)
            assert torch.allclose(root[1:] - root[:-1], (root[1] - root[0]).expand(k - 1), atol=1e-12)
    else:
        assert torch.equal(sig[:-1], table[make_timesteps(S, k, spacing)])


def test_as_timesteps_and_as_sigmas_parse_counts_and_grids():
    assert as_timesteps(S, np.int64(10), "trailing").tolist() == list(range(999, 0, -100))   # not the grid [10]
    assert as_timesteps(S, torch.tensor(10), "leading").tolist() == list(range(900, -1, -100))
    assert as_timesteps(S, None).tolist() == list(range(T - 1, -1, -1))
    assert as_timesteps(S, [999, 500, 0]).tolist() == [999, 500, 0]
    for bad in ([0, 500], [500, 500], [1000, 0], [999.5, 3]):
        with pytest.raises(ValueError):
            as_timesteps(S, bad)
    for bad in (0, T + 1):
        with pytest.raises(ValueError):
            make_timesteps(S, bad, "trailing")
    with pytest.raises(ValueError, match="unknown spacing"):
        make_timesteps(S, 10, "uniform")
    assert as_sigmas(S, [80.0, 1.0]).tolist() == [80.0, 1.0, 0.0]
    with pytest.raises(ValueError):
        as_sigmas(S, [1.0, 2.0, 0.0])


class _Recorder:
    """A zero-ε network that records every timestep it is asked about."""

    def __init__(self):
        self.seen = []

    def __call__(self, x, t, cond=None):
        self.seen.append(t[0].item())
        return torch.zeros_like(x)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("spacing", SPACINGS)
def test_samplers_query_the_network_exactly_on_the_grid(sampler, spacing):
    rec = _Recorder()
    d = Denoiser(rec, S)
    sample(d, torch.zeros(1, 1, 1, 1), sampler, 7, spacing=spacing, generator=torch.Generator().manual_seed(0))
    if sampler in ("heun", "euler"):
        want = sigma_to_t(S, make_sigmas(S, 7, spacing)[:-1]).tolist()
        if sampler == "heun":   # the correction evaluates at the next level, except before σ = 0
            want = [w for i, t in enumerate(want) for w in ([t] if i == 0 else [t, t])]
        assert rec.seen == pytest.approx(want, abs=1e-4)
    else:
        assert rec.seen == make_timesteps(S, 7, spacing).tolist()
