"""predictor_node: tracked agents in, Gaussian-mixture forecasts (and markers) out.

Compute and publish are split (openpilot style): ``_on_tracks`` only buffers, the timer runs the
model on the latest histories and publishes. Bad input is logged (throttled), counted, dropped.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import MarkerArray

from rap_planner.core.biased.sampler import BiasedSampler
from rap_planner.core.forecasting import forecast_agents, plan_on_grid
from rap_planner.core.history import AgentHistoryBuffer
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import ForecastSet, Plan
from rap_planner.msg import PredictionArray, RiskAwarePlan, TrackedAgentArray
from rap_planner.ros.conversions import forecast_set_to_msg, plan_from_msg, stamp_to_s, tracked_agents_from_msg
from rap_planner.ros.diagnostics import InputProblems
from rap_planner.ros.markers import forecast_markers
from rap_planner.ros.params import ParameterSet, ParamSpec

PARAMS = (
    ParamSpec("model_path", "", "Checkpoint (.safetensors with its .json beside it); empty: the shipped model.",
              read_only=True),
    ParamSpec("device", "cpu", "Torch device for inference (the model is small: CPU keeps latency lowest).",
              choices=("cpu",), read_only=True),
    ParamSpec("rate_hz", 10.0, "Prediction rate [Hz].", 0.5, 50.0),
    ParamSpec("max_agents", 64, "Agents predicted per cycle, nearest to the ego first [-].", 1, 1024),
    ParamSpec("max_track_age_s", 1.0, "A track unseen this long is forgotten [s].", 0.1, 10.0),
    ParamSpec("frame_id", "map", "Frame the tracks must be in (REP 105); others are rejected."),
    ParamSpec("trigger_on_tracks", False, "Predict as soon as tracks arrive (lock-step simulation) instead of on "
              "the timer."),
    ParamSpec("publish_markers", True, "Publish /viz/prediction markers."),
    ParamSpec("biased_samples", 0, "Risk-biased weighted joint samples per cycle for the ego's current plan "
              "(RAP); 0: mixtures only [-].", 0, 1024),
    ParamSpec("sample_risk_level", 0.9, "Risk level the samples are biased for [-].", 0.0, 0.999),
    ParamSpec("sampler_path", "", "Biased sampler checkpoint; empty: the shipped one.", read_only=True),
    ParamSpec("marker_rate_hz", 2.0, "Marker publishing rate: markers cost more than the forecasts [Hz].", 0.1, 50.0),
)


class PredictorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("predictor", **kwargs)
        self.params = ParameterSet(self, PARAMS, on_change=self._apply_params)
        torch.set_num_threads(1)  # a second thread only adds tail latency when the other core is busy
        path = self.params["model_path"]
        self.model = ForecastModel.load(path) if path else ForecastModel.default()
        cfg = self.model.config
        self.buffer = AgentHistoryBuffer(history_s=cfg.history_s, dt_s=cfg.dt_s,
                                         max_age_s=self.params["max_track_age_s"],
                                         max_agents=self.params["max_agents"])
        self.problems = InputProblems(self, "predictor")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(TrackedAgentArray, "/perception/tracked_agents", self._on_tracks, reliable)
        self.create_subscription(Odometry, "/ego/odom", self._on_odom, reliable)
        self.create_subscription(RiskAwarePlan, "/planning/plan", self._on_plan, reliable)
        self._ego_plan: Plan | None = None
        self._sample_seed = 0
        sampler_path = self.params["sampler_path"]
        self.sampler = BiasedSampler.load(sampler_path) if sampler_path else BiasedSampler.default()
        self._ego_xy_m: np.ndarray | None = None
        self.pub_predictions = self.create_publisher(PredictionArray, "/prediction/agents", reliable)
        self.pub_markers = self.create_publisher(MarkerArray, "/viz/prediction", 1)
        self.timer = self.create_timer(1.0 / self.params["rate_hz"], self._on_timer)
        self._new_data = False
        self._last_markers_s = -float("inf")
        self.last_latency_s = 0.0
        self.get_logger().info(f"predictor ready: {self.model.source}")

    def _apply_params(self, values: dict) -> None:
        self.buffer.max_age_s = values["max_track_age_s"]
        self.buffer.max_agents = values["max_agents"]
        self.timer.timer_period_ns = int(1e9 / values["rate_hz"])

    def _on_plan(self, msg: RiskAwarePlan) -> None:
        """The ego's current plan: what the risk-biased samples are drawn against."""
        plan = plan_from_msg(msg)
        if len(plan.times_s) and np.isfinite(plan.states[:, :2]).all():
            self._ego_plan = plan

    def with_biased_samples(self, forecasts: ForecastSet) -> ForecastSet:
        """RAP: joint samples biased toward the risk of the ego's plan, with importance weights."""
        count = self.params["biased_samples"]
        if count == 0 or self._ego_plan is None or not forecasts.agents:
            return forecasts
        self._sample_seed += 1
        return self.sampler.sample(forecasts, plan_on_grid(self._ego_plan, forecasts), self.params["sample_risk_level"],
                                   count, self._sample_seed)

    def _on_odom(self, msg: Odometry) -> None:
        """The ego position decides which agents get the learned model when there are too many."""
        p = msg.pose.pose.position
        if np.isfinite(p.x) and np.isfinite(p.y):
            self._ego_xy_m = np.array([p.x, p.y])

    def _on_tracks(self, msg: TrackedAgentArray) -> None:
        try:
            if msg.header.frame_id != self.params["frame_id"]:
                self.problems.report("wrong_frame", f"tracks in frame '{msg.header.frame_id}', expected "
                                     f"'{self.params['frame_id']}': message dropped")
                return
            agents, problems = tracked_agents_from_msg(msg)
            for p in problems:
                self.problems.report("bad_agent", p)
            if len(agents) > self.buffer.max_agents and self._ego_xy_m is not None:  # nearest take the free slots
                ego_x, ego_y = self._ego_xy_m
                agents.sort(key=lambda a: (a.x_m - ego_x) ** 2 + (a.y_m - ego_y) ** 2)
            report = self.buffer.update(agents, stamp_to_s(msg.header.stamp))
            for p in report.problems:
                self.problems.report("bad_tracks", p)
            if report.dropped_over_capacity:
                self.problems.report("over_capacity", f"{report.dropped_over_capacity} agents not tracked: "
                                     f"max_agents = {self.buffer.max_agents} reached")
            self._new_data = self._new_data or report.accepted > 0 or report.reset_time_jump
            if self.params["trigger_on_tracks"] and not report.rejected_stale_message:
                self._predict_and_publish()
        except Exception as exc:  # a callback must never take the node down
            self.problems.report("exception", f"tracks callback failed: {exc!r}")

    def _on_timer(self) -> None:
        if self._new_data and not self.params["trigger_on_tracks"]:
            self._predict_and_publish()

    def _predict_and_publish(self) -> None:
        self._new_data = False
        try:
            start = time.perf_counter()
            forecasts = self.with_biased_samples(forecast_agents(self.model, self.buffer, self._ego_xy_m))
            msg = forecast_set_to_msg(forecasts, self.params["frame_id"])
            self.pub_predictions.publish(msg)
            self.last_latency_s = time.perf_counter() - start
            if self.params["publish_markers"] and start - self._last_markers_s >= 1.0 / self.params["marker_rate_hz"]:
                self._last_markers_s = start
                self.pub_markers.publish(forecast_markers(forecasts, self.params["frame_id"], msg.header))
        except Exception as exc:
            self.problems.report("exception", f"prediction failed: {exc!r}")

