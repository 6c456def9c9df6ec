"""predictor_node: tracked agents in, Gaussian-mixture forecasts (and markers) out.

Compute and publish are split (openpilot style): ``_on_tracks`` only buffers, the timer runs the
model on the latest histories and publishes. Bad input is logged (throttled), counted, dropped.
"""

from __future__ import annotations

import time

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import MarkerArray

from rap_planner import topics
from rap_planner.core.biased.sampler import BiasedSampler
from rap_planner.core.parameters import PREDICTOR
from rap_planner.core.pipeline import PredictionPipeline, PredictionSettings
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.msg import PredictionArray, RiskAwarePlan, TrackedAgentArray
from rap_planner.ros.conversions import forecast_set_to_msg, plan_from_msg, stamp_to_s, tracked_agents_from_msg
from rap_planner.ros.diagnostics import InputProblems, ProblemKind
from rap_planner.ros.markers import forecast_markers
from rap_planner.ros.params import ParameterSet

PARAMS = PREDICTOR.params  # rap_planner/core/parameters.py: names, types, units, ranges, defaults


class PredictorNode(Node):
    def __init__(self, **kwargs):
        super().__init__("predictor", **kwargs)
        self.params = ParameterSet(self, PARAMS, on_change=self._apply_params)
        path = self.params["model_path"]
        model = ForecastModel.load(path) if path else ForecastModel.default()
        sampler_path = self.params["sampler_path"]
        sampler = BiasedSampler.load(sampler_path) if sampler_path else None  # None: the shipped one, when needed
        self.pipeline = PredictionPipeline(model, PredictionSettings.from_values(self.params.values), sampler)
        self.problems = InputProblems(self, "predictor")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(TrackedAgentArray, topics.TRACKED_AGENTS, self._on_tracks, reliable)
        self.create_subscription(Odometry, topics.EGO_ODOM, self._on_odom, reliable)
        self.create_subscription(RiskAwarePlan, topics.PLAN, self._on_plan, reliable)
        self._ego_xy_m: np.ndarray | None = None
        self.pub_predictions = self.create_publisher(PredictionArray, topics.PREDICTIONS, reliable)
        self.pub_markers = self.create_publisher(MarkerArray, topics.PREDICTION_MARKERS, 1)
        self.timer = self.create_timer(1.0 / self.params["rate_hz"], self._on_timer)
        self._new_data = False
        self._last_markers_s = -float("inf")
        self.last_latency_s = 0.0
        self.get_logger().info(f"predictor ready: {model.source}")

    def _apply_params(self, values: dict) -> None:
        self.pipeline.update_settings(PredictionSettings.from_values(values))
        self.timer.timer_period_ns = int(1e9 / values["rate_hz"])

    def _on_plan(self, msg: RiskAwarePlan) -> None:
        """The ego's current plan: what the risk-biased samples are drawn against."""
        self.pipeline.set_ego_plan(plan_from_msg(msg))

    def _on_odom(self, msg: Odometry) -> None:
        """The ego position decides which agents get the learned model when there are too many."""
        p = msg.pose.pose.position
        if np.isfinite(p.x) and np.isfinite(p.y):
            self._ego_xy_m = np.array([p.x, p.y])

    def _on_tracks(self, msg: TrackedAgentArray) -> None:
        try:
            if msg.header.frame_id != self.params["frame_id"]:
                self.problems.report(ProblemKind.WRONG_FRAME, f"tracks in frame '{msg.header.frame_id}', expected "
                                     f"'{self.params['frame_id']}': message dropped")
                return
            agents, problems = tracked_agents_from_msg(msg)
            for p in problems:
                self.problems.report(ProblemKind.BAD_AGENT, p)
            report = self.pipeline.add_tracks(agents, stamp_to_s(msg.header.stamp), self._ego_xy_m)
            for p in report.problems:
                self.problems.report(ProblemKind.BAD_TRACKS, p)
            if report.dropped_over_capacity:
                self.problems.report(ProblemKind.OVER_CAPACITY, f"{report.dropped_over_capacity} agents not tracked: "
                                     f"max_agents = {self.pipeline.settings.max_agents} reached")
            self._new_data = self._new_data or report.accepted > 0 or report.reset_time_jump
            if self.params["trigger_on_tracks"] and not report.rejected_stale_message:
                self._predict_and_publish()
        except Exception as exc:  # a callback must never take the node down
            self.problems.report(ProblemKind.EXCEPTION, f"tracks callback failed: {exc!r}")

    def _on_timer(self) -> None:
        if self._new_data and not self.params["trigger_on_tracks"]:
            self._predict_and_publish()

    def _predict_and_publish(self) -> None:
        self._new_data = False
        try:
            start = time.perf_counter()
            forecasts = self.pipeline.step(self._ego_xy_m)
            msg = forecast_set_to_msg(forecasts, self.params["frame_id"])
            self.pub_predictions.publish(msg)
            self.last_latency_s = time.perf_counter() - start
            if self.params["publish_markers"] and start - self._last_markers_s >= 1.0 / self.params["marker_rate_hz"]:
                self._last_markers_s = start
                self.pub_markers.publish(forecast_markers(forecasts, self.params["frame_id"], msg.header))
        except Exception as exc:
            self.problems.report(ProblemKind.EXCEPTION, f"prediction failed: {exc!r}")

