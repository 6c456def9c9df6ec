"""Regression tests for what the hostile-input corpus found: each was a crash or a silent wrong answer.

The nodes are driven by calling their callbacks directly (no DDS: the point here is the semantics);
test_hostile_inputs.py covers the same inputs over DDS.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter

from rap_planner.bench.e2e import highway_traffic
from rap_planner.core.history import AgentHistoryBuffer
from rap_planner.core.pipeline import PredictionPipeline
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import EgoState, TrackedAgent
from rap_planner.msg import RiskAwarePlan
from rap_planner.ros.conversions import (
    ego_to_odometry,
    forecast_set_from_msg,
    odometry_to_ego,
    tracked_agents_from_msg,
    tracked_agents_to_msg,
)
from rap_planner.ros.planner_node import PARAMS, PlannerNode, reference_from_polyline
from rap_planner.ros.predictor_node import PredictorNode

from . import corpus


@pytest.fixture(scope="module")
def model() -> ForecastModel:
    return ForecastModel.default()


def test_reused_id_restarts_the_track_instead_of_forecasting_a_teleport(model):
    pipeline = PredictionPipeline(model)
    for k in range(16):
        agents = highway_traffic(8, 0.1 * k)
        if k == 15:  # the tracker hands agent 1's id to a car 500 m further on
            a = agents[0]
            agents[0] = TrackedAgent(a.agent_id, a.stamp_s, a.x_m + 500.0, 3.5, 0.0, 20.0, 0.0)
        report = pipeline.add_tracks(agents, 1000.0 + 0.1 * k)
    assert report.restarted_jump == 1 and "id reused" in report.problems[0]
    forecast = {f.agent_id: f for f in pipeline.step(np.zeros(2)).agents}[1]
    travelled = np.hypot(*(forecast.means_m[:, -1] - forecast.means_m[:, 0]).T)
    assert travelled.max() < 200.0, f"a 20 m/s car forecast to travel {travelled.max():.0f} m in 5 s"


def test_normal_driving_and_short_dropouts_do_not_restart_tracks():
    buffer = AgentHistoryBuffer(max_agents=64)
    for k in range(40):
        if k % 7 == 3:
            continue  # a missed detection: the next step is twice as far
        report = buffer.update([TrackedAgent(1, 0.0, 40.0 * 0.1 * k, 0.0, 0.0, 40.0, 0.0)], 0.1 * k)
        assert report.restarted_jump == 0


def test_absurd_positions_and_speeds_are_rejected_as_bad_agents(model):
    traffic = highway_traffic(8, 1.0)
    msg = tracked_agents_to_msg(traffic, 1000.0)
    msg.agents += [corpus.agent(101, x=1e12), corpus.agent(102, y=-1e30), corpus.agent(103, vx=1e30),
                   corpus.agent(104, vy=-5e3)]
    agents, problems = tracked_agents_from_msg(msg)
    assert [a.agent_id for a in agents] == [a.agent_id for a in traffic] and len(problems) == 4
    assert all("out of range" in p for p in problems)


def test_one_absurd_track_no_longer_spoils_every_forecast(model):
    """Before: one agent at 1e12 m moved the others' forecasts by ~600 m; at 1e30 m all became NaN."""
    def forecasts(extra):
        pipeline = PredictionPipeline(model)
        for k in range(16):
            msg = tracked_agents_to_msg(highway_traffic(8, 0.1 * k), 1000.0 + 0.1 * k)
            msg.agents += extra
            pipeline.add_tracks(tracked_agents_from_msg(msg)[0], 1000.0 + 0.1 * k)
        return {f.agent_id: f.means_m for f in pipeline.step(np.zeros(2)).agents}

    clean = forecasts([])
    for x in (1e12, 1e30, 1e300):
        spoilt = forecasts([corpus.agent(99, x=x)])
        assert set(spoilt) == set(clean) and all(np.array_equal(spoilt[i], clean[i]) for i in clean)


def test_ids_above_int64_are_rejected_not_fatal_to_the_predictor(rclpy_context):
    pred = PredictorNode(context=rclpy_context, parameter_overrides=[Parameter("trigger_on_tracks", value=True)])
    published = []
    pred.pub_predictions.publish = published.append
    for k in range(3):
        msg = tracked_agents_to_msg(highway_traffic(4, 0.1 * k), 1000.0 + 0.1 * k)
        msg.agents.append(corpus.agent(2**64 - 1, x=60.0))
        pred._on_tracks(msg)
    assert len(published) == 3 and len(published[-1].agents) == 4
    assert pred.problems.counts["bad_agent"] == 3 and pred.problems.counts["exception"] == 0
    pred.destroy_node()
    with pytest.raises(ValueError, match="2\\^63"):
        forecast_set_from_msg(corpus.predictions([corpus.prediction_agent(2**63)], 1000.0))


def test_over_capacity_is_counted_and_the_nearest_agents_are_kept(rclpy_context):
    pred = PredictorNode(context=rclpy_context, parameter_overrides=[Parameter("max_agents", value=4)])
    pred._on_odom(ego_to_odometry(EgoState(1000.0, 500.0, 0.0, 0.0, 25.0)))
    far_first = [corpus.agent(i, x=float(1000 - 50 * i)) for i in range(1, 11)]  # nearest to x=500 come last
    pred._on_tracks(corpus.tracks(far_first, 1000.0))
    assert pred.pipeline.buffer.window().agent_ids.tolist() == [7, 8, 9, 10]
    assert pred.problems.counts["over_capacity"] == 1
    pred.destroy_node()


def test_absurd_odometry_is_rejected():
    for kwargs in ({"x": 1e30}, {"y": -1e8}, {"v": 1e4}, {"x": 1e300}):
        with pytest.raises(ValueError, match="out of range"):
            odometry_to_ego(corpus.odom(1000.0, **kwargs))
    ego = odometry_to_ego(corpus.odom(1000.0, x=5e5, y=5.4e6))  # UTM-sized coordinates are fine
    assert ego.y_m == 5.4e6


@pytest.mark.parametrize("arrays, match", [
    ({"cov_xx": np.full(corpus.K * corpus.T, -5.0)}, "semi-definite"),
    ({"cov_xy": np.full(corpus.K * corpus.T, 10.0)}, "semi-definite"),
    ({"length": -4.0}, "footprint"),
    ({"width": 1e30}, "footprint"),
])
def test_forecasts_with_impossible_covariances_or_footprints_are_rejected(arrays, match):
    with pytest.raises(ValueError, match=match):
        forecast_set_from_msg(corpus.predictions([corpus.prediction_agent(1, **arrays)], 1000.0))
    assert forecast_set_from_msg(corpus.predictions([corpus.prediction_agent(1)], 1000.0)).agents  # good one passes


def test_absurd_forecast_step_counts_are_rejected():
    with pytest.raises(ValueError, match="num_steps"):
        forecast_set_from_msg(corpus.predictions([], 1000.0, num_steps=2**32 - 1))


@pytest.mark.parametrize("xy", [[[0.0, 0.0], [1e300, 0.0]], [[-1.7e308, 0.0], [1.7e308, 0.0]],
                                [[0.0, 0.0], [1e9, 0.0]]])
def test_overlong_reference_paths_are_rejected_at_once(xy):
    values = {p.name: p.default for p in PARAMS}
    start = time.perf_counter()
    with pytest.raises(ValueError, match="long"):
        reference_from_polyline(np.array(xy), values)
    assert time.perf_counter() - start < 0.5


def test_lockstep_planner_resumes_after_time_jumps_back(rclpy_context):
    """A simulator reset or a looping bag: lock-step planning used to stop for good."""
    pred = PredictorNode(context=rclpy_context, parameter_overrides=[Parameter("trigger_on_tracks", value=True)])
    plan = PlannerNode(context=rclpy_context, parameter_overrides=[Parameter("trigger_on_predictions", value=True)])
    pred.pub_predictions.publish = plan._on_predictions
    plans = []
    plan.pub_plan.publish = plans.append

    def instant(t_s: float) -> None:
        plan._on_odom(ego_to_odometry(EgoState(t_s, 25.0 * t_s, 0.0, 0.0, 25.0)))
        pred._on_tracks(tracked_agents_to_msg(highway_traffic(8, t_s), t_s))

    for k in range(10):
        instant(100.0 + 0.1 * k)
    assert len(plans) == 10
    for k in range(10):
        instant(0.1 * k)
    assert len(plans) == 20 and all(p.status == RiskAwarePlan.STATUS_OK for p in plans[10:]), \
        [p.status_reason for p in plans[10:]]
    assert plan.problems.counts["time_jump"] == 1
    assert math.isclose(plans[-1].header.stamp.nanosec * 1e-9 + plans[-1].header.stamp.sec, 0.9, abs_tol=1e-6)
    pred.destroy_node()
    plan.destroy_node()
