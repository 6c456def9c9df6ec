import dataclasses
import math

import numpy as np
import pytest

from rap_planner.core.candidates import ego_frenet
from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner, candidates_and_cost
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.safety import RssCheck, RssParams, braking_accel, in_lane_stop, leader_tracks
from rap_planner.core.scenes import didactic_scene
from rap_planner.core.types import AgentForecast, EgoState, ForecastSet, SafetyAction

DT_S, STEPS = 0.2, 25
TIMES_S = DT_S * np.arange(1, STEPS + 1)
LANE_M = 3.5


def two_lanes() -> ReferencePath:
    return ReferencePath.straight(400.0, lanes=2, lane_width_m=LANE_M, speed_limit_mps=30.0, origin_xy_m=(-100.0, 0.0))


def car(agent_id: int, reference: ReferencePath, s0_m: float, v_mps: float, accel_mps2: float, d_m: float
        ) -> AgentForecast:
    """One-mode forecast of a car in a lane: constant accel (braking ends at a stop)."""
    t_stop = v_mps / -accel_mps2 if accel_mps2 < 0.0 else math.inf
    t = np.minimum(TIMES_S, t_stop)
    s = s0_m + v_mps * t + 0.5 * accel_mps2 * t**2
    x, y, _ = reference.to_cartesian(s, np.full_like(s, d_m))
    cov = np.zeros((1, STEPS, 2, 2))
    cov[..., 0, 0] = cov[..., 1, 1] = (0.2 + 0.2 * TIMES_S) ** 2
    return AgentForecast(agent_id, np.array([1.0]), np.stack([x, y], axis=1)[None], cov)


def braking_leader_scene() -> tuple[EgoState, ForecastSet, ReferencePath]:
    """The issue's crash: the ego accelerates at 20 m/s, its leader 20 m ahead brakes at 8 m/s^2, and a
    follower forecast as never reacting makes braking in lane look worse than accelerating into the free lane."""
    reference = two_lanes()
    ego = EgoState(0.0, 0.0, 0.0, 0.0, 20.0, a_mps2=2.5)
    ego_s = 100.0
    agents = [car(1, reference, ego_s + 24.5, 20.0, -8.0, 0.0), car(2, reference, ego_s - 14.0, 22.0, 0.0, 0.0)]
    return ego, ForecastSet(0.0, DT_S, STEPS, agents), reference


def plan_both(ego, forecasts, reference, **changes):
    config = PlannerConfig(**changes)
    off = RiskAwarePlanner(dataclasses.replace(config, safety_check=False)).plan(ego, forecasts, reference, 0.0)
    on = RiskAwarePlanner(config).plan(ego, forecasts, reference, 0.0)
    return off, on


def test_the_layer_brakes_where_risk_picks_accelerating_into_a_lane_change():
    ego, forecasts, reference = braking_leader_scene()
    unsafe, safe = plan_both(ego, forecasts, reference, target_speed_mps=30.0)
    assert unsafe.ok and unsafe.note is None
    assert unsafe.states[:10, 4].min() > 2.0 and unsafe.states[-1, 1] > LANE_M - 0.5  # accelerates, changes lane
    assert safe.ok and safe.safety is SafetyAction.SAFE_ALTERNATIVE and safe.reason.startswith("safety override")
    assert unsafe.safety is None
    assert safe.risk > unsafe.risk  # the override is not the lowest-risk candidate
    params = RssParams()
    in_leaders_lane = safe.states[:, 1] - 0.5 * ego.width_m < 0.5 * LANE_M
    assert in_leaders_lane[:8].all() and safe.states[1:, 4][in_leaders_lane[1:]].max() <= 0.0  # no accelerating ...
    assert safe.states[5, 4] <= -params.ego_min_brake_mps2 + 1e-6  # ... and brakes by 1 s at least as RSS asks
    assert safe.states[-1, 3] < unsafe.states[-1, 3] - 5.0


def test_the_check_fails_accelerating_in_lane_and_passes_hard_braking():
    ego, forecasts, reference = braking_leader_scene()
    config = PlannerConfig(target_speed_mps=30.0)
    cands, _ = candidates_and_cost(ego, reference, config)
    leaders = leader_tracks(forecasts, reference, cands.times_s, config.safety)
    safe = RssCheck(leaders, reference, ego.length_m, ego.width_m, braking_accel(cands), config.safety).candidates(
        cands)
    in_lane = np.abs(cands.d_m).max(axis=1) < 1e-9  # stays on its lane centre
    fastest = int(np.flatnonzero(in_lane)[np.argmax(cands.v_mps[in_lane, -1])])
    assert not safe[fastest]
    assert safe[cands.braking_index]
    assert not safe[cands.a_mps2[:, 1] > 0.0].any()  # accelerating at 1 s while closing on the braking leader


@pytest.mark.parametrize("scene", ["free_road", "didactic"])
def test_a_free_road_plan_is_unchanged(scene):
    if scene == "free_road":  # a leader far ahead at the same speed, a car passing in the other lane
        reference = two_lanes()
        ego = EgoState(0.0, 0.0, 0.0, 0.0, 20.0)
        agents = [car(1, reference, 100.0 + 150.0, 20.0, 0.0, 0.0), car(2, reference, 100.0 - 5.0, 24.0, 0.0, LANE_M)]
        forecasts = ForecastSet(0.0, DT_S, STEPS, agents)
    else:  # crossing traffic is the ranking's, not the leader check's
        ego, forecasts, reference = didactic_scene()
    off, on = plan_both(ego, forecasts, reference, risk_level=0.0)
    assert on.ok and on.note is None and off.note is None
    np.testing.assert_array_equal(on.states, off.states)
    assert on.risk == off.risk


def test_when_nothing_passes_the_ego_stops_steering_to_the_lane_centre():
    """Off-centre between two lanes with a stopped car close ahead in each: only a stop is left."""
    reference = two_lanes()
    ego = EgoState(0.0, 0.0, 1.0, 0.0, 15.0)
    agents = [car(1, reference, 100.0 + 18.0, 0.0, 0.0, 0.0), car(2, reference, 100.0 + 18.0, 0.0, 0.0, LANE_M)]
    plan = RiskAwarePlanner().plan(ego, ForecastSet(0.0, DT_S, STEPS, agents), reference, 0.0)
    assert plan.ok and plan.safety is SafetyAction.IN_LANE_STOP and "in-lane stop" in plan.reason
    y, v = plan.states[:, 1], plan.states[:, 3]
    assert abs(y[-1]) < 0.1 * abs(y[0])  # the nearest lane centre is the reference (y = 0), not the offset
    assert np.all(np.diff(np.abs(y)) <= 1e-9) and np.all(np.diff(v) <= 1e-9) and v[-1] == 0.0


@pytest.mark.parametrize("speed_mps", [0.0, 3.0, 25.0])
def test_in_lane_stop_moves_with_the_car_and_within_the_heading_limit(speed_mps):
    reference = two_lanes()
    ego = EgoState(0.0, 0.0, 2.4, 0.0, speed_mps)  # nearest lane centre: 3.5 m
    config = PlannerConfig()
    cands, _ = candidates_and_cost(ego, reference, config)
    stop = in_lane_stop(cands, reference, ego_frenet(ego, reference)[2], config.limits)
    d, s, v = stop.d_m[0], stop.s_m[0], stop.v_mps[0]
    np.testing.assert_allclose(v, cands.v_mps[cands.braking_index])  # the hard-braking profile
    assert np.all(np.diff(d) >= -1e-9) and d[-1] <= LANE_M + 1e-9
    heading = np.arctan2(np.gradient(d), np.maximum(np.gradient(s), 1e-9))
    assert np.abs(heading).max() <= config.limits.max_heading_error_rad
    if speed_mps == 0.0:
        np.testing.assert_array_equal(d, 2.4)  # no steering on the spot
    else:
        assert abs(d[-1] - LANE_M) < abs(2.4 - LANE_M)
