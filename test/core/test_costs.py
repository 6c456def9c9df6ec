import numpy as np
import pytest

from rap_planner.core.candidates import CandidateConfig, plan_candidates
from rap_planner.core.cost_terms import (
    NUM_TERMS,
    LateralGeometry,
    LongitudinalGeometry,
    lateral_factors,
    longitudinal_factors,
    longitudinal_partials,
    longitudinal_ttc_factor,
    overlap_ramp,
    ttc_time_scale_s,
)
from rap_planner.core.costs import CostModel, CostWeights, agent_tracks
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.scenarios import sample_scenarios
from rap_planner.core.types import AgentForecast, EgoState, ForecastSet

DT = 0.2
STEPS = 25
TIMES = DT * np.arange(1, STEPS + 1)
ROAD = ReferencePath.straight(length_m=400.0, lanes=2, speed_limit_mps=15.0, origin_xy_m=(-50.0, 0.0))
EGO = EgoState(stamp_s=0.0, x_m=0.0, y_m=0.0, yaw_rad=0.0, v_mps=10.0)
SMALL = CandidateConfig(num_target_speeds=3, lane_change_durations_s=(4.0,), lateral_nudges_m=(0.0,))


def agent_along(agent_id: int, x0_m: float, y_m: float, v_mps: float, sigma_m: float = 0.0) -> AgentForecast:
    mean = np.stack([x0_m + v_mps * TIMES, np.full(STEPS, y_m)], axis=1)[None]
    cov = np.broadcast_to(np.eye(2) * sigma_m**2, (1, STEPS, 2, 2)).copy()
    return AgentForecast(agent_id, np.ones(1), mean, cov)


def tracks_for(*agents: AgentForecast, scenarios: int = 8):
    forecasts = ForecastSet(stamp_s=0.0, dt_s=DT, num_steps=STEPS, agents=list(agents))
    return agent_tracks(sample_scenarios(forecasts, scenarios, seed=0, times_s=TIMES), ROAD)


def model(weights: CostWeights | None = None) -> CostModel:
    return CostModel(ROAD, weights or CostWeights(), target_speed_mps=10.0, target_offset_m=0.0,
                     ego_length_m=4.5, ego_width_m=1.8)


def keep_speed(v_mps: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ego (s, v, d) at steps 1..T driving on at v from x = 0 (s = 50 on ROAD)."""
    return 50.0 + v_mps * TIMES, np.full(STEPS, v_mps), np.zeros(STEPS)


def test_collision_cost_is_higher_when_footprints_overlap():
    cost = model()
    ahead_same_lane = cost.interaction_direct(*keep_speed(), tracks_for(agent_along(1, 20.0, 0.0, 5.0)), DT)
    next_lane = cost.interaction_direct(*keep_speed(), tracks_for(agent_along(1, 20.0, 3.5, 5.0)), DT)
    far = cost.interaction_direct(*keep_speed(), tracks_for(agent_along(1, 80.0, 0.0, 10.0)), DT)
    assert ahead_same_lane.min() > 10.0 * next_lane.max()  # the ego runs into the slower car ahead
    assert next_lane.min() > 0.0  # passing it in the next lane only costs TTC
    assert far.max() < 1e-6


def test_ttc_cost_grows_as_the_gap_closes():
    cost = model(CostWeights(collision=0.0))
    slow_ahead = [cost.interaction_direct(*keep_speed(v), tracks_for(agent_along(1, 30.0, 0.0, 5.0)), DT)[0]
                  for v in (5.0, 8.0, 11.0)]
    assert slow_ahead[0] < slow_ahead[1] < slow_ahead[2]


def test_vectorised_costs_equal_the_naive_loop():
    cands = plan_candidates(EGO, ROAD, SMALL)
    tracks = tracks_for(agent_along(1, 20.0, 0.0, 4.0, 0.5), agent_along(2, -10.0, 3.5, 14.0, 0.8),
                        agent_along(3, 40.0, 3.5, 0.0, 0.3), agent_along(4, 250.0, 0.0, 20.0, 0.3))
    cost = model()
    fast = cost.evaluate(cands, tracks, prune=False)
    slow = cost.evaluate_naive(cands, tracks)
    assert fast.shape == (cands.num, 8)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-4)
    pruned = cost.evaluate(cands, tracks)
    np.testing.assert_allclose(pruned, slow, rtol=1e-5, atol=1e-3)
    assert cost.relevant_columns(cands, tracks).sum() < tracks.num_columns


def test_gradient_matches_finite_differences():
    cost = model()
    # TTC jumps where overlapping footprints pass each other (closing changes sign), so keep clear of that
    tracks = tracks_for(agent_along(1, 25.0, 0.3, 6.0, 0.4), agent_along(2, -20.0, -0.5, 12.0, 0.4))
    s, v, d = keep_speed()
    value, grad_s, grad_v = cost.interaction_gradient(s, v, d, tracks, DT)
    np.testing.assert_allclose(value, cost.interaction_direct(s, v, d, tracks, DT))
    h = 1e-2

    def central(ds, dv):
        up = cost.interaction_direct(s + ds, v + dv, d, tracks, DT)
        down = cost.interaction_direct(s - ds, v - dv, d, tracks, DT)
        return (up - down) / (2 * h)

    for k in (5, 12, 20):
        bump = np.zeros(STEPS)
        bump[k] = h
        np.testing.assert_allclose(grad_s[:, k], central(bump, 0.0), rtol=0.05, atol=1e-2)
        np.testing.assert_allclose(grad_v[:, k], central(0.0, bump), rtol=0.05, atol=1e-2)


def test_factor_definitions():
    weights = CostWeights()
    margin = weights.collision_margin_m
    reach = np.array(4.5)
    ramp = overlap_ramp(np.array([4.5 - margin, 4.5, 4.5 + margin, 10.0]), reach, margin)
    np.testing.assert_allclose(ramp, [1.0, 0.5, 0.0, 0.0])
    # 10 m of gap closing at 4 m/s: TTC 2.5 s; behind the ego or opening: no TTC cost
    ds, closing_mps = np.array([14.5, -14.5, 14.5]), np.array([4.0, 4.0, -4.0])
    lon = LongitudinalGeometry(ds, np.abs(ds), reach, ttc_time_scale_s(weights) * closing_mps)
    expected = np.exp(-(2.5**2) / (2.0 * weights.ttc_sigma_time_s2))
    np.testing.assert_allclose(longitudinal_ttc_factor(lon), [expected, 0.0, 0.0], rtol=1e-9)


def random_geometry(rng: np.random.Generator, n: int) -> tuple[LongitudinalGeometry, LateralGeometry]:
    ds = rng.uniform(-12.0, 12.0, n)
    lon = LongitudinalGeometry(ds, np.abs(ds), rng.uniform(4.0, 5.0, n), rng.uniform(-6.0, 6.0, n))
    return lon, LateralGeometry(rng.uniform(0.0, 4.0, n), rng.uniform(1.7, 2.0, n))


def test_in_place_factors_equal_allocated_ones():
    weights = CostWeights()
    lon, lat = random_geometry(np.random.default_rng(1), 500)
    lon = LongitudinalGeometry(*(x.astype(np.float32) for x in (lon.ds_m, lon.dist_m, lon.reach_m, lon.approach_m)))
    g, work, closing = np.full((NUM_TERMS, 500), np.nan, np.float32), np.empty(500, np.float32), np.empty(500, bool)
    filled = longitudinal_factors(lon, weights, DT, out=list(g), work=work, closing=closing)
    h = np.full((NUM_TERMS, 500), np.nan)
    lateral_factors(lat, weights, out=list(h))
    for k, (lon_k, lat_k) in enumerate(zip(longitudinal_factors(lon, weights, DT), lateral_factors(lat, weights),
                                           strict=True)):
        assert np.shares_memory(filled[k], g[k])
        np.testing.assert_array_equal(g[k], lon_k)
        np.testing.assert_array_equal(h[k], lat_k)
    assert (g[0] > 0).any() and (g[1] > 0).any()  # both terms exercised


def test_longitudinal_partials_match_finite_differences():
    weights, h = CostWeights(), 1e-6
    lon, _ = random_geometry(np.random.default_rng(0), 4000)
    margin, scale = weights.collision_margin_m, ttc_time_scale_s(weights)
    kink = np.abs(lon.dist_m - lon.reach_m)  # keep clear of the ramp's corners and of ds = 0
    smooth = (np.abs(kink - margin) > 1e-3) & (kink > 1e-3) & (lon.dist_m > 1e-3) & (np.abs(lon.approach_m) > 1e-2)
    lon = LongitudinalGeometry(*(x[smooth] for x in (lon.ds_m, lon.dist_m, lon.reach_m, lon.approach_m)))

    def moved(ds_ego_m: float, dv_ego_mps: float) -> list[np.ndarray]:
        ds = lon.ds_m - ds_ego_m
        shifted = LongitudinalGeometry(ds, np.abs(ds), lon.reach_m, lon.approach_m + scale * dv_ego_mps)
        return longitudinal_factors(shifted, weights, DT)

    d_ds, d_dv = longitudinal_partials(lon, longitudinal_factors(lon, weights, DT), weights, DT)
    for k in range(NUM_TERMS):
        numeric_s = (moved(h, 0.0)[k] - moved(-h, 0.0)[k]) / (2 * h)
        numeric_v = (moved(0.0, h)[k] - moved(0.0, -h)[k]) / (2 * h)
        np.testing.assert_allclose(d_ds[k], numeric_s, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(d_dv[k], numeric_v, rtol=1e-4, atol=1e-6)
        assert np.abs(d_ds[k]).max() > 0.1  # the ramp and the TTC factor both have slopes here


def test_deterministic_terms():
    cost = model()
    v = np.full((1, STEPS + 1), 10.0)
    zero = np.zeros((1, STEPS + 1))
    assert cost.longitudinal_cost(v, zero, 0.0, DT)[0] == 0.0
    assert cost.longitudinal_cost(v - 2.0, zero, 0.0, DT)[0] == pytest.approx(4.0 * STEPS * DT)
    assert cost.longitudinal_cost(v, zero, 1.0, DT)[0] == pytest.approx(0.1 * 0.1 * DT * (1.0 / DT) ** 2)
    assert cost.lateral_cost(zero, zero, DT)[0] == 0.0
    offroad = np.full((1, STEPS + 1), -1.5)  # right edge at -1.75, half width 0.9
    expected = DT * STEPS * (1.0 * 1.5**2 + 100.0 * 0.65**2)
    assert cost.lateral_cost(offroad, zero, DT)[0] == pytest.approx(expected)


def test_no_agents_costs_only_the_deterministic_terms():
    cands = plan_candidates(EGO, ROAD, SMALL)
    tracks = tracks_for()
    costs = model().evaluate(cands, tracks)
    assert costs.shape == (cands.num, 1)
    np.testing.assert_allclose(costs[:, 0], model().deterministic(cands))
