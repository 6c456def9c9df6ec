import dataclasses

import numpy as np
import pytest

from rap_planner.core.candidates import (
    CandidateConfig,
    LaneCommitment,
    VehicleLimits,
    integrate_accel,
    lateral_profiles,
    plan_candidates,
)
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import EgoState

LIMITS = VehicleLimits()
TOL = 1e-6


@pytest.fixture(scope="module")
def road() -> ReferencePath:
    return ReferencePath.straight(length_m=600.0, lanes=3, speed_limit_mps=25.0, origin_xy_m=(-100.0, 0.0))


def ego_at(lane: int = 1, v_mps: float = 20.0, a_mps2: float = 0.0, yaw_rad: float = 0.0) -> EgoState:
    return EgoState(stamp_s=0.0, x_m=0.0, y_m=3.5 * lane, yaw_rad=yaw_rad, v_mps=v_mps, a_mps2=a_mps2)


def test_at_least_500_candidates_with_the_defaults_and_more_on_demand(road):
    cands = plan_candidates(ego_at(), road, CandidateConfig())
    assert cands.num >= 500
    more = plan_candidates(ego_at(), road, CandidateConfig(num_target_speeds=16))
    assert more.num > 900
    assert cands.x_m.shape == (cands.num, 26)


def test_braking_in_lane_is_always_included(road):
    for v in (0.0, 5.0, 30.0):
        cands = plan_candidates(ego_at(v_mps=v, yaw_rad=0.05), road, CandidateConfig())
        b = cands.braking_index
        assert 0 <= b < cands.num
        np.testing.assert_allclose(cands.d_m[b], cands.d_m[b, 0])  # stays where it is laterally
        assert np.all(np.diff(cands.v_mps[b]) <= TOL)
        assert cands.v_mps[b, -1] == pytest.approx(0.0, abs=TOL)
        if v > 0.0:
            assert cands.a_mps2[b].min() == pytest.approx(-LIMITS.max_decel_mps2)


def test_every_candidate_respects_the_limits(road):
    cands = plan_candidates(ego_at(a_mps2=1.0), road, CandidateConfig())
    dt = cands.dt_s
    assert np.all(cands.v_mps >= 0.0)
    assert np.all(cands.a_mps2 <= LIMITS.max_accel_mps2 + TOL)
    assert np.all(cands.a_mps2 >= -LIMITS.max_decel_mps2 - TOL)
    accel = np.concatenate([np.full((cands.num, 1), cands.ego_accel_mps2), cands.a_mps2[:, :-1]], axis=1)
    jerk = np.diff(accel, axis=1) / dt
    stopping = cands.v_mps[:, 1:] <= TOL  # the step that brings the car to rest may end the braking at once
    assert np.all((np.abs(jerk) <= LIMITS.max_jerk_mps3 + TOL) | stopping)
    # lateral acceleration from the Cartesian trajectory itself, independent of the Frenet formulas
    vx, vy = np.gradient(cands.x_m, dt, axis=1), np.gradient(cands.y_m, dt, axis=1)
    ax, ay = np.gradient(vx, dt, axis=1), np.gradient(vy, dt, axis=1)
    speed = np.hypot(vx, vy)
    lat = np.abs(vx * ay - vy * ax) / np.maximum(speed, 1.0)
    assert np.all(lat[:, 1:-1] <= LIMITS.max_lat_accel_mps2 * 1.1)


def test_tighter_limits_drop_candidates(road):
    loose = plan_candidates(ego_at(), road, CandidateConfig())
    tight_limits = dataclasses.replace(LIMITS, max_lat_accel_mps2=0.5)
    tight = plan_candidates(ego_at(), road, CandidateConfig(limits=tight_limits))
    assert tight.num < loose.num
    assert tight.braking_index >= 0


def test_candidates_start_at_the_ego_state_and_change_lanes(road):
    cands = plan_candidates(ego_at(lane=1, v_mps=15.0), road, CandidateConfig())
    np.testing.assert_allclose(cands.x_m[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(cands.y_m[:, 0], 3.5, atol=1e-9)
    np.testing.assert_allclose(cands.v_mps[:, 0], 15.0)
    ends = np.round(cands.d_m[:, -1] / 3.5).astype(int)
    assert set(ends) == {0, 1, 2}  # keep, change left, change right
    states = cands.states(0)
    assert states.shape == (26, 5)


def test_lane_changes_are_limited_to_the_neighbouring_lanes():
    road = ReferencePath.straight(length_m=600.0, lanes=5, speed_limit_mps=25.0)
    cands = plan_candidates(ego_at(lane=0), road, CandidateConfig())
    assert cands.d_m[:, -1].max() < 3.5 + 1.0


def test_a_committed_lane_change_finishes_within_the_time_left(road):
    # Halfway into a change from lane 1 (3.5 m) to lane 2 (7 m), moving left at 1 m/s, 1.6 s left.
    plain = lateral_profiles(5.2, 1.0, road, 0.9, CandidateConfig())[0]
    d, rate, _ = lateral_profiles(5.2, 1.0, road, 0.9, CandidateConfig(), LaneCommitment(7.0, 1.6))
    into = np.isclose(d[:, -1], 7.0)
    assert into.sum() >= 2
    np.testing.assert_allclose(d[into, 8:], 7.0, atol=1e-9)  # arrived at 1.6 s
    np.testing.assert_allclose(rate[1:, 0], 1.0)  # every move (row 0 holds) continues the lateral motion
    np.testing.assert_allclose(d[~into], plain[~into])  # other lanes (an abort) are offered as before
    assert np.all(np.abs(plain[into, 8] - 7.0) > 0.1)  # without the commitment they are still on the way


def test_integrate_accel_stops_instead_of_reversing():
    s, v, a = integrate_accel(2.0, np.full((1, 10), -5.0), 0.2)
    assert v.min() == 0.0
    assert np.all(np.diff(s) >= 0.0)
    np.testing.assert_allclose(v[0, 1:], v[0, :-1] + a[0, :-1] * 0.2, atol=1e-12)
    np.testing.assert_allclose(np.diff(s[0]), v[0, :-1] * 0.2 + 0.5 * a[0, :-1] * 0.04, atol=1e-12)
