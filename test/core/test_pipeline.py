"""The per-cycle pipeline the nodes, the closed loop and the benches share (no ROS, no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from rap_planner.core.pipeline import (
    AccelerationEstimator,
    PlanningPipeline,
    PredictionPipeline,
    PredictionSettings,
    Stack,
)
from rap_planner.core.planner import PlannerConfig
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import EgoState, FallbackReason, TrackedAgent

ROAD = ReferencePath.straight(length_m=600.0, lanes=2, speed_limit_mps=20.0)


def ego_at(stamp_s: float, v_mps: float = 15.0, a_mps2: float = 0.0) -> EgoState:
    return EgoState(stamp_s, 20.0 + 15.0 * stamp_s, 0.0, 0.0, v_mps, a_mps2)


def car(agent_id: int, stamp_s: float, x0_m: float, y_m: float = 0.0, v_mps: float = 15.0) -> TrackedAgent:
    return TrackedAgent(agent_id, stamp_s, x0_m + v_mps * stamp_s, y_m, 0.0, v_mps, 0.0)


@pytest.fixture(scope="module")
def model() -> ForecastModel:
    return ForecastModel.default()


def test_acceleration_is_estimated_from_successive_speeds_whatever_the_input_says():
    est = AccelerationEstimator()
    assert est.update(ego_at(0.0, 10.0, a_mps2=3.0)).a_mps2 == 0.0  # nothing to difference yet
    assert est.update(ego_at(0.1, 10.2, a_mps2=3.0)).a_mps2 == pytest.approx(2.0)
    assert est.update(ego_at(0.1, 10.2)).a_mps2 == pytest.approx(2.0)  # same stamp: same estimate
    assert est.update(ego_at(0.3, 9.8)).a_mps2 == pytest.approx(-2.0)
    assert est.update(ego_at(5.0, 9.8)).a_mps2 == 0.0  # after a gap nothing is known
    assert est.update(ego_at(4.9, 9.0)).a_mps2 == 0.0  # time going backwards


def test_prediction_keeps_the_agents_nearest_the_ego_when_over_capacity(model):
    pipeline = PredictionPipeline(model, PredictionSettings(max_agents=3))
    agents = [car(i, 0.0, x0_m=20.0 + 30.0 * i) for i in range(6)]  # agent 0 nearest the ego at x = 20 m
    report = pipeline.add_tracks(agents[::-1], 0.0, ego_xy_m=np.array([20.0, 0.0]))
    assert report.dropped_over_capacity == 3
    assert sorted(f.agent_id for f in pipeline.step().agents) == [0, 1, 2]


def test_settings_changes_apply_to_the_next_message(model):
    pipeline = PredictionPipeline(model, PredictionSettings(max_agents=2))
    pipeline.update_settings(PredictionSettings(max_agents=4))
    assert pipeline.add_tracks([car(i, 0.0, 30.0 * i) for i in range(4)], 0.0).dropped_over_capacity == 0
    assert PredictionSettings.from_values({"max_agents": 7, "rate_hz": 10.0}) == PredictionSettings(max_agents=7)


def test_stale_odometry_gives_the_braking_fallback():
    pipeline = PlanningPipeline(PlannerConfig(), ROAD, odom_timeout_s=0.5)
    plan = pipeline.step(ego_at(0.0), None, now_s=2.0)
    assert not plan.ok and plan.fallback is FallbackReason.STALE_ODOMETRY
    assert plan.states[-1, 3] < plan.states[0, 3]  # braking


def test_a_failing_planner_still_gives_a_plan():
    pipeline = PlanningPipeline(PlannerConfig(), ROAD)

    class Broken:
        stamp_s = 0.0  # passes the planner's age check, then breaks it

        def __getattr__(self, name):
            raise RuntimeError("broken forecasts")

    plan = pipeline.step(ego_at(0.0), Broken(), now_s=0.0)  # type: ignore[arg-type]
    assert not plan.ok and len(plan.states) == PlannerConfig().num_steps + 1


def test_stack_plans_each_instant_and_draws_biased_samples_for_its_last_plan(model):
    settings = PredictionSettings(biased_samples=8, sample_risk_level=0.9)
    stack = Stack(PredictionPipeline(model, settings), PlanningPipeline(PlannerConfig(num_scenarios=16), ROAD))
    outputs = []
    for k in range(3):
        t = 0.1 * k
        outputs.append(stack.step([car(1, t, 60.0), car(2, t, 40.0, y_m=3.5, v_mps=12.0)], ego_at(t), t))
    assert all(o.plan.ok for o in outputs), [o.plan.reason for o in outputs]
    assert outputs[0].forecasts.sample_weights is None  # no plan yet to bias for
    later = outputs[-1].forecasts
    assert later.sample_weights is not None and len(later.sample_weights) == 8
    assert later.sample_risk_level == pytest.approx(0.9)
    assert outputs[-1].plan.num_scenarios == 8  # the planner took its risk over the biased samples


def test_stack_is_deterministic(model):
    def run() -> list[np.ndarray]:
        stack = Stack(PredictionPipeline(model), PlanningPipeline(PlannerConfig(num_scenarios=16), ROAD))
        return [stack.step([car(1, 0.1 * k, 50.0)], ego_at(0.1 * k), 0.1 * k).plan.states for k in range(3)]

    for a, b in zip(run(), run(), strict=True):
        np.testing.assert_array_equal(a, b)
