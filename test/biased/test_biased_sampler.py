"""BiasedSampler: alpha = 0 is the planner's sampler, weights are valid and consistent, files round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from biased_helpers import didactic_problem, mixed_modes_forecasts, random_sampler, straight_plan

from rap_planner.core.biased import BiasedCheckpointError, BiasedSampler, BiasedSamplerConfig
from rap_planner.core.biased.features import mixtures
from rap_planner.core.biased.sampler import DEFAULT_SAMPLER, stratified_normals
from rap_planner.core.risk import CVaR
from rap_planner.core.scenarios import sample_scenarios, validate_forecasts
from rap_planner.core.types import ForecastSet


def joint(forecasts: ForecastSet) -> np.ndarray:
    return np.stack([a.samples_m for a in forecasts.agents], axis=1)


@pytest.mark.parametrize("sampler", [BiasedSampler(), random_sampler()], ids=["untrained", "random_head"])
def test_alpha_zero_is_the_planners_unbiased_sampling(sampler):
    forecasts = mixed_modes_forecasts()
    out = sampler.sample(forecasts, straight_plan(forecasts), 0.0, 24, seed=11)
    np.testing.assert_array_equal(out.sample_weights, np.full(24, 1 / 24))
    reference = sample_scenarios(forecasts, 24, seed=11).positions_m
    np.testing.assert_allclose(joint(out), reference, rtol=0, atol=1e-9)
    assert out.sample_risk_level == 0.0


def test_output_is_a_valid_weighted_forecast_and_the_input_is_untouched():
    forecasts = mixed_modes_forecasts()
    out = random_sampler().sample(forecasts, straight_plan(forecasts), 0.9, 32, seed=1)
    validate_forecasts(out)
    assert all(a.samples_m is None for a in forecasts.agents) and forecasts.sample_weights is None
    assert all(a.samples_m.shape == (32, forecasts.num_steps, 2) for a in out.agents)
    assert out.sample_weights.shape == (32,) and np.all(out.sample_weights > 0.0)
    assert out.sample_weights.sum() == pytest.approx(1.0)
    assert not np.allclose(out.sample_weights, 1 / 32)  # a random head really biases
    assert out.sample_risk_level == 0.9
    for new, old in zip(out.agents, forecasts.agents, strict=True):
        assert new.agent_id == old.agent_id and new.means_m is old.means_m


def test_same_seed_same_samples_other_seed_others():
    forecasts = mixed_modes_forecasts()
    sampler, plan = random_sampler(), straight_plan(mixed_modes_forecasts())
    a, b, c = (sampler.sample(forecasts, plan, 0.8, 16, seed) for seed in (5, 5, 6))
    np.testing.assert_array_equal(joint(a), joint(b))
    np.testing.assert_array_equal(a.sample_weights, b.sample_weights)
    assert not np.allclose(joint(a), joint(c))


def recover_latents(mix, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(modes (S, N), z (S, N, 2)): for each sample and agent, the mode whose mean + L z reproduces it exactly."""
    num_s, num_n = samples.shape[:2]
    modes, z = np.zeros((num_s, num_n), np.int64), np.zeros((num_s, num_n, 2))
    for s in range(num_s):
        for n in range(num_n):
            best = np.inf
            for k in np.flatnonzero(mix.weights[n] > 0):
                zk = np.linalg.solve(mix.chol_m[n, k, 0], samples[s, n, 0] - mix.means_m[n, k, 0])
                error = np.abs(mix.means_m[n, k] + mix.chol_m[n, k] @ zk - samples[s, n]).max()
                if error < best:
                    best, modes[s, n], z[s, n] = error, k, zk
            assert best < 1e-6
    return modes, z


def test_weights_are_the_balance_heuristic_density_ratio():
    """p / m recomputed independently in numpy (per-agent mode and Gaussian densities of the latents)."""
    forecasts = mixed_modes_forecasts()
    sampler, plan = random_sampler(seed=2), straight_plan(forecasts)
    mix = mixtures(forecasts)
    params, frames = sampler.bias(mix, plan, forecasts.dt_s, 0.7)
    log_q = params.log_q[0].double().numpy()
    assert np.allclose(np.exp(log_q).sum(axis=1), 1.0) and np.all(np.exp(log_q[0, 1:]) < 1e-12)  # padding
    out = sampler.sample(forecasts, plan, 0.7, 8, seed=3)
    assert sampler.num_biased(8, 0.7) == 4
    modes, z = recover_latents(mix, joint(out))
    log_r = np.zeros(8)
    for s in range(8):
        for n in range(2):
            k = modes[s, n]
            local = frames[n, k].T @ z[s, n]
            mu, sigma = params.shift[0, n, k].double().numpy(), np.exp(params.log_scale[0, n, k].double().numpy())
            log_q_z = np.sum(-0.5 * ((local - mu) / sigma) ** 2 - np.log(sigma))
            log_p_z = np.sum(-0.5 * z[s, n] ** 2)
            log_r[s] += log_q[n, k] - np.log(mix.weights[n, k]) + log_q_z - log_p_z
    expected = 1.0 / (0.5 + 0.5 * np.exp(log_r))
    np.testing.assert_allclose(out.sample_weights, expected / expected.sum(), rtol=1e-6)


def test_importance_weighting_is_consistent():
    """Weighted means under strongly biased samples match the base distribution's within MC error."""
    forecasts = mixed_modes_forecasts()
    plan = straight_plan(forecasts)
    out = random_sampler(seed=4).sample(forecasts, plan, 0.95, 6000, seed=0)
    w = out.sample_weights
    base = sample_scenarios(forecasts, 60000, seed=1).positions_m
    biased = joint(out)
    functions = {
        "y_end_agent_9": lambda x: x[:, 1, -1, 1],
        "x_mid_agent_7": lambda x: x[:, 0, 5, 0],
        "near_ego": lambda x: (np.linalg.norm(x[:, 1] - plan[None], axis=-1).min(axis=1) < 2.0).astype(float),
    }
    for name, f in functions.items():
        values = f(biased)
        estimate = np.sum(w * values)
        mc_error = np.sqrt(np.sum(w**2 * (values - estimate) ** 2)) + np.std(f(base)) / np.sqrt(len(base))
        assert abs(estimate - np.mean(f(base))) < 4.0 * mc_error, name


def test_mode_probabilities_are_unbiased_after_weighting():
    forecasts = mixed_modes_forecasts()
    out = random_sampler(seed=5).sample(forecasts, straight_plan(forecasts), 0.9, 4000, seed=2)
    mix = mixtures(forecasts)
    modes, _ = recover_latents(mix, joint(out))
    shares = np.array([out.sample_weights[modes[:, 1] == k].sum() for k in range(3)])
    np.testing.assert_allclose(shares, mix.weights[1], atol=0.03)


def test_stratified_normals_are_standard_normal_and_cover_every_slice():
    z = stratified_normals(3, 1000, np.random.default_rng(0))
    assert z.shape == (1000, 3, 2)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
    from scipy.special import ndtr

    slots = np.sort(np.floor(ndtr(z[:, 1, 0]) * 1000))
    np.testing.assert_array_equal(slots, np.arange(1000))


def test_no_agents_gives_uniform_weights_only():
    empty = ForecastSet(stamp_s=0.0, dt_s=0.2, num_steps=5)
    out = BiasedSampler().sample(empty, np.zeros((5, 2)), 0.9, 4, seed=0)
    np.testing.assert_array_equal(out.sample_weights, np.full(4, 0.25))
    assert out.agents == []


@pytest.mark.parametrize(("alpha", "num", "plan_shape", "match"), [
    (1.0, 8, (10, 2), "risk_level"), (-0.1, 8, (10, 2), "risk_level"), (0.5, 0, (10, 2), "num_samples"),
    (0.5, 8, (9, 2), "ego_plan_xy_m"),
])
def test_bad_inputs_raise_with_the_reason(alpha, num, plan_shape, match):
    with pytest.raises(ValueError, match=match):
        BiasedSampler().sample(mixed_modes_forecasts(), np.zeros(plan_shape), alpha, num, seed=0)


def test_one_sample_or_no_tail_fraction_stays_unbiased():
    forecasts = mixed_modes_forecasts()
    plan = straight_plan(forecasts)
    assert random_sampler().num_biased(1, 0.9) == 0
    out = random_sampler(tail_fraction=0.0).sample(forecasts, plan, 0.9, 8, seed=0)
    np.testing.assert_array_equal(out.sample_weights, np.full(8, 1 / 8))


def test_didactic_bias_moves_samples_into_the_crossers_fast_mode():
    """The random head is not trained, so only check the mechanics: biased draws follow q_b's mode mix."""
    problem = didactic_problem()
    sampler = random_sampler(seed=1)
    plan = problem.plan_xy(problem.keep_speed_candidate())
    params, _ = sampler.bias(mixtures(problem.forecasts), plan, problem.forecasts.dt_s, 0.9)
    q_fast = float(np.exp(params.log_q[0, 0, 1].item()))
    out = sampler.sample(problem.forecasts, plan, 0.9, 400, seed=0)
    end_y = joint(out)[200:, 0, -1, 1]  # the q_b half
    fast = np.mean(end_y > -5.0 + 0.5 * 5.0 + 1.5)  # beyond anything the slow mode reaches
    assert fast == pytest.approx(q_fast, abs=0.08)


# ---------------------------------------------------------------------- files


def test_save_load_round_trip(tmp_path):
    sampler = random_sampler(seed=7, hidden_units=8, hidden_layers=1, tail_fraction=0.25)
    path = sampler.save(tmp_path / "s.safetensors", {"note": "test"})
    loaded = BiasedSampler.load(path)
    assert loaded.config == sampler.config and loaded.metadata == {"note": "test"}
    forecasts = mixed_modes_forecasts()
    a = sampler.sample(forecasts, straight_plan(forecasts), 0.9, 16, seed=1)
    b = loaded.sample(forecasts, straight_plan(forecasts), 0.9, 16, seed=1)
    np.testing.assert_array_equal(joint(a), joint(b))
    np.testing.assert_array_equal(a.sample_weights, b.sample_weights)
    assert json.loads(path.with_suffix(".json").read_text())["format"] == "rap_planner.biased_sampler"


def test_corrupt_or_mismatched_files_fail_with_the_path_and_reason(tmp_path):
    path = random_sampler().save(tmp_path / "s.safetensors")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BiasedCheckpointError, match="corrupt or unreadable"):
        BiasedSampler.load(path)
    path.write_bytes(raw)
    side = path.with_suffix(".json")
    sidecar = json.loads(side.read_text())
    side.write_text(json.dumps({**sidecar, "config": {**sidecar["config"], "hidden_units": 32}}))
    with pytest.raises(BiasedCheckpointError, match="shape"):
        BiasedSampler.load(path)
    side.write_text(json.dumps({**sidecar, "config": {"bogus": 1}}))
    with pytest.raises(BiasedCheckpointError, match="invalid sampler config"):
        BiasedSampler.load(path)
    side.write_text("{not json")
    with pytest.raises(BiasedCheckpointError, match="not valid JSON"):
        BiasedSampler.load(path)
    side.unlink()
    with pytest.raises(BiasedCheckpointError, match="sidecar not found"):
        BiasedSampler.load(path)
    with pytest.raises(BiasedCheckpointError, match="missing.json: sidecar not found"):
        BiasedSampler.load(tmp_path / "missing.safetensors")


def test_non_finite_weights_are_refused(tmp_path):
    sampler = random_sampler()
    with torch.no_grad():
        sampler.head.bias[0] = float("nan")
    path = sampler.save(tmp_path / "nan.safetensors")
    with pytest.raises(BiasedCheckpointError, match="non-finite"):
        BiasedSampler.load(path)


def test_config_validation():
    with pytest.raises(ValueError, match="tail_fraction"):
        BiasedSamplerConfig(tail_fraction=1.0).validate()
    with pytest.raises(ValueError, match="hidden_units"):
        BiasedSampler(BiasedSamplerConfig(hidden_units=0))


def test_shipped_sampler_beats_unbiased_sampling_on_rap_didactic_scene():
    """The shipped encoder (if installed) is small, loads, and estimates keep-speed CVaR_0.95 better from 16 samples."""
    path = DEFAULT_SAMPLER
    if not path.is_file():
        pytest.skip("no shipped biased sampler")
    assert path.stat().st_size + path.with_suffix(".json").stat().st_size < 2 * 1024 * 1024
    sampler = BiasedSampler.load(path)
    problem = didactic_problem()
    candidate = np.array([problem.keep_speed_candidate()])
    plan = problem.plan_xy(int(candidate[0]))
    measure = CVaR()
    reference = float(measure.risk(problem.costs(sample_scenarios(problem.forecasts, 4096, 99).positions_m,
                                                 candidate)[0], None, 0.95))
    biased, plain = [], []
    for seed in range(24):
        out = sampler.sample(problem.forecasts, plan, 0.95, 16, seed)
        costs = problem.costs(joint(out), candidate)[0]
        biased.append(abs(float(measure.risk(costs, out.sample_weights, 0.95)) - reference))
        costs = problem.costs(sample_scenarios(problem.forecasts, 16, seed).positions_m, candidate)[0]
        plain.append(abs(float(measure.risk(costs, None, 0.95)) - reference))
    assert np.mean(biased) < 0.05 * reference
    assert np.mean(biased) < 0.5 * np.mean(plain)


def test_default_falls_back_to_an_untrained_sampler(monkeypatch, tmp_path):
    import rap_planner.core.biased.sampler as module

    monkeypatch.setattr(module, "DEFAULT_SAMPLER", tmp_path / "absent.safetensors")
    sampler = BiasedSampler.default()
    assert sampler.source.startswith("untrained")
    assert all(torch.count_nonzero(p) == 0 for p in sampler.head.parameters())
