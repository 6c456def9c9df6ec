"""The IDM + MOBIL baseline ego on a hand-built straight three-lane road (no SUMO)."""

from __future__ import annotations

import numpy as np
import pytest

from rap_planner.core.types import EgoState, TrackedAgent
from rap_planner.sim.baselines import IdmMobilDriver, IdmParams, idm_accel
from rap_planner.sim.geometry import ReferencePath

STEP_S = 0.1
ROAD = ReferencePath(np.array([[0.0, 0.0], [2000.0, 0.0]]), np.array([0.0, 2000.0]), 3.5, (-3.5, 0.0, 3.5),
                     30.0, 1500.0)


def standing(agent_id: int, x_m: float, y_m: float) -> TrackedAgent:
    return TrackedAgent(agent_id, 0.0, x_m, y_m, 0.0, 0.0, 0.0)


def moving(agent_id: int, x_m: float, y_m: float, v_mps: float) -> TrackedAgent:
    return TrackedAgent(agent_id, 0.0, x_m, y_m, 0.0, v_mps, 0.0)


def drive(driver: IdmMobilDriver, ego: EgoState, agents: list[TrackedAgent], seconds: float) -> list[EgoState]:
    """Closed loop of the driver alone; agents keep their velocity."""
    states = [ego]
    for k in range(round(seconds / STEP_S)):
        t = (k + 1) * STEP_S
        x, y, yaw, v = driver.step(states[-1], [TrackedAgent(a.agent_id, t, a.x_m + a.vx_mps * t, a.y_m, 0.0,
                                                              a.vx_mps, 0.0) for a in agents])
        states.append(EgoState(t, x, y, yaw, v, (v - states[-1].v_mps) / STEP_S))
    return states


def test_idm_accelerates_below_cruise_speed_and_brakes_hard_for_a_close_standing_car():
    params = IdmParams(desired_speed_mps=25.0)
    assert idm_accel(10.0, np.inf, 0.0, params) > 1.0
    assert idm_accel(25.0, np.inf, 0.0, params) == pytest.approx(0.0, abs=1e-9)
    assert idm_accel(30.0, np.inf, 0.0, params) < 0.0
    assert idm_accel(25.0, 10.0, 0.0, params) == -params.max_decel_mps2  # saturated
    assert idm_accel(25.0, 60.0, 0.0, params) < idm_accel(25.0, 60.0, 25.0, params)  # closing in costs more


def test_stops_behind_a_road_blocked_in_every_lane_without_touching_it():
    driver = IdmMobilDriver(ROAD, STEP_S, IdmParams(desired_speed_mps=25.0))
    wall = [standing(i, 300.0, d) for i, d in enumerate((-3.5, 0.0, 3.5))]
    states = drive(driver, EgoState(0.0, 100.0, 0.0, 0.0, 25.0), wall, 30.0)
    assert states[-1].v_mps < 0.1
    gap_m = 300.0 - states[-1].x_m - 4.5
    assert 0.5 < gap_m < 5.0
    assert max(abs(s.y_m) for s in states) < 1e-6  # nowhere to go: kept its lane


def test_changes_lane_around_a_slow_leader_when_the_next_lane_is_free():
    driver = IdmMobilDriver(ROAD, STEP_S, IdmParams(desired_speed_mps=25.0))
    agents = [moving(1, 150.0, 0.0, 10.0), moving(2, 170.0, -3.5, 10.0)]  # the right lane is slow too
    states = drive(driver, EgoState(0.0, 100.0, 0.0, 0.0, 25.0), agents, 8.0)
    assert driver.target_d_m == 3.5
    assert states[-1].y_m == pytest.approx(3.5, abs=0.05)
    assert states[-1].x_m > 150.0 + 10.0 * 8.0  # overtook it


def test_does_not_change_into_a_lane_where_a_fast_car_is_close_behind():
    driver = IdmMobilDriver(ROAD, STEP_S, IdmParams(desired_speed_mps=25.0))
    agents = [moving(1, 150.0, 0.0, 10.0), moving(2, 92.0, 3.5, 32.0), moving(3, 92.0, -3.5, 32.0)]
    states = drive(driver, EgoState(0.0, 100.0, 0.0, 0.0, 25.0), agents, 0.5)
    assert driver.target_d_m == 0.0
    assert max(abs(s.y_m) for s in states) < 1e-6
