import numpy as np
import pytest

from rap_planner.core.scenarios import (
    InvalidForecast,
    cholesky_2x2,
    resample_in_time,
    sample_scenarios,
    systematic_modes,
)
from rap_planner.core.types import AgentForecast, ForecastSet

DT = 0.2
STEPS = 25
TIMES = DT * np.arange(1, STEPS + 1)


def two_mode_agent(agent_id: int = 1) -> AgentForecast:
    keep = np.stack([10.0 + 5.0 * TIMES, np.zeros(STEPS)], axis=1)
    turn = np.stack([10.0 + 8.0 * TIMES, 0.5 * TIMES], axis=1)
    cov = np.zeros((2, STEPS, 2, 2))
    cov[..., 0, 0] = 0.1 + 0.2 * TIMES**2
    cov[..., 1, 1] = 0.05 + 0.1 * TIMES
    cov[..., 0, 1] = cov[..., 1, 0] = 0.03 * TIMES
    return AgentForecast(agent_id, np.array([0.8, 0.2]), np.stack([keep, turn]), cov)


def forecast_set(*agents: AgentForecast, **kwargs) -> ForecastSet:
    return ForecastSet(stamp_s=0.0, dt_s=DT, num_steps=STEPS, agents=list(agents), **kwargs)


def mixture_moments(agent: AgentForecast) -> tuple[np.ndarray, np.ndarray]:
    w, mu, cov = agent.weights, agent.means_m, agent.covariances_m2
    mean = np.einsum("k,kti->ti", w, mu)
    centred = mu - mean
    second = cov + np.einsum("kti,ktj->ktij", centred, centred)
    return mean, np.einsum("k,ktij->tij", w, second)


def test_same_seed_same_scenarios_other_seed_others():
    fs = forecast_set(two_mode_agent(1), two_mode_agent(2))
    a, b, c = (sample_scenarios(fs, 32, seed).positions_m for seed in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (32, 2, STEPS, 2)


def test_sample_mean_and_covariance_match_the_mixture():
    agent = two_mode_agent()
    scen = sample_scenarios(forecast_set(agent), 20000, seed=1)
    samples = scen.positions_m[:, 0]
    mean, cov = mixture_moments(agent)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.05)
    centred = samples - samples.mean(axis=0)
    emp = np.einsum("sti,stj->tij", centred, centred) / len(samples)
    np.testing.assert_allclose(emp, cov, atol=0.03 * np.abs(cov).max())
    np.testing.assert_allclose(scen.weights, 1.0 / 20000)


def test_mode_shares_are_stratified_and_agents_independent():
    rng = np.random.default_rng(0)
    weights = np.array([[0.8, 0.2, 0.0], [0.1, 0.3, 0.6]])
    modes = systematic_modes(weights, 64, rng)
    for row, w in zip(modes, weights, strict=True):
        counts = np.bincount(row, minlength=3)
        assert np.all(np.abs(counts - 64 * w) <= 1.0)
    assert np.all(modes[0] != 2)  # a zero-weight mode is never drawn


def test_one_normal_draw_per_trajectory_keeps_it_coherent():
    agent = two_mode_agent()
    agent.covariances_m2 = np.broadcast_to(np.eye(2) * (0.1 + TIMES)[:, None, None] ** 2, (2, STEPS, 2, 2)).copy()
    samples = sample_scenarios(forecast_set(agent), 50, seed=3).positions_m[:, 0]
    sigma = (0.1 + TIMES)[None, :, None]
    # each sample is one of the mode means plus one fixed multiple of sigma at every step
    constant = [np.abs((samples - mu) / sigma - (samples[:, :1] - mu[:1]) / sigma[:, :1]).max(axis=(1, 2)) < 1e-9
                for mu in agent.means_m]
    assert np.all(constant[0] | constant[1])
    assert constant[0].sum() == 40 and constant[1].sum() == 10


def test_samples_from_the_forecast_are_used_as_given():
    agent = two_mode_agent()
    agent.samples_m = np.random.default_rng(0).normal(size=(5, STEPS, 2))
    fs = forecast_set(agent, sample_weights=np.array([1.0, 1.0, 2.0, 0.0, 4.0]))
    scen = sample_scenarios(fs, 64, seed=0)
    np.testing.assert_allclose(scen.positions_m[:, 0], agent.samples_m, atol=1e-12)
    np.testing.assert_allclose(scen.weights, [0.125, 0.125, 0.25, 0.0, 0.5])


def test_agents_without_samples_get_draws_of_the_same_count():
    given = two_mode_agent(1)
    given.samples_m = np.zeros((7, STEPS, 2))
    scen = sample_scenarios(forecast_set(given, two_mode_agent(2)), 64, seed=0)
    assert scen.positions_m.shape == (7, 2, STEPS, 2)
    np.testing.assert_allclose(scen.weights, 1.0 / 7)


def test_resampled_onto_the_planner_grid_by_linear_interpolation():
    agent = two_mode_agent()
    agent.covariances_m2 = np.zeros_like(agent.covariances_m2)
    agent.weights = np.array([1.0, 0.0])
    times = 0.05 + 0.1 * np.arange(1, 60)  # other dt, other start, past the forecast's end
    scen = sample_scenarios(forecast_set(agent), 4, seed=0, times_s=times)
    expected = np.stack([10.0 + 5.0 * times, np.zeros_like(times)], axis=1)  # linear motion is kept exactly
    np.testing.assert_allclose(scen.positions_m[0, 0], expected, atol=1e-9)
    np.testing.assert_array_equal(scen.times_s, times)


def test_resample_holds_spreads_when_not_extrapolating():
    values = np.array([[1.0], [2.0]])
    out = resample_in_time(values, 1.0, 1.0, np.array([0.0, 1.5, 3.0]), extrapolate=False)
    np.testing.assert_allclose(out[:, 0], [1.0, 1.5, 2.0])


def test_no_agents_gives_one_scenario():
    scen = sample_scenarios(forecast_set(), 64, seed=0, times_s=TIMES)
    assert scen.positions_m.shape == (1, 0, STEPS, 2)
    np.testing.assert_array_equal(scen.weights, [1.0])


def test_cholesky_of_semidefinite_covariances():
    cov = np.array([[[4.0, 2.0], [2.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.3], [0.3, 2.0]]])
    chol = cholesky_2x2(cov)
    np.testing.assert_allclose(chol @ chol.transpose(0, 2, 1), cov, atol=1e-12)


def test_invalid_forecasts_are_rejected_with_their_reason():
    agent = two_mode_agent()
    agent.means_m = agent.means_m.copy()
    agent.means_m[0, 3, 1] = np.nan
    with pytest.raises(InvalidForecast, match="non-finite input: forecast of agent 1 means_m"):
        sample_scenarios(forecast_set(agent), 8)
    bad_shape = two_mode_agent()
    bad_shape.means_m = bad_shape.means_m[:, :10]
    with pytest.raises(InvalidForecast, match="invalid input"):
        sample_scenarios(forecast_set(bad_shape), 8)
    bad_weights = two_mode_agent()
    bad_weights.weights = np.array([0.0, 0.0])
    with pytest.raises(InvalidForecast, match="weights"):
        sample_scenarios(forecast_set(bad_weights), 8)
