"""planner_node: ego odometry + forecasts + reference path in, risk-aware plan out.

Callbacks only store the latest inputs; the timer plans (compute) and then publishes (publish).
Parameters change the planner at its next cycle; invalid values are rejected with their reason.
"""

from __future__ import annotations

import time

import numpy as np
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from visualization_msgs.msg import MarkerArray

from rap_planner import topics
from rap_planner.config import planner_config
from rap_planner.core.parameters import PLANNER
from rap_planner.core.pipeline import PlanningPipeline
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.types import EgoState, ForecastSet, Plan
from rap_planner.msg import PredictionArray, RiskAwarePlan
from rap_planner.ros.conversions import (
    forecast_set_from_msg,
    odometry_to_ego,
    plan_to_msg,
    plan_to_path,
)
from rap_planner.ros.diagnostics import InputProblems, ProblemKind
from rap_planner.ros.markers import plan_markers
from rap_planner.ros.params import ParameterSet

PARAMS = PLANNER.params  # rap_planner/core/parameters.py: names, types, units, ranges, defaults


TIME_JUMP_BACK_S = 1.0  # lock-step: inputs this far behind the last plan mean time was reset (as in history.py)
MAX_REFERENCE_LENGTH_M = 100_000.0  # resampled every 0.5 m: about 0.1 s and a few MB to build


def _config_problem(values: dict) -> str | None:
    try:
        planner_config(values)
        reference_from_params(values)
    except ValueError as exc:
        return str(exc)
    return None


def reference_from_params(values: dict) -> ReferencePath:
    xy = np.stack([np.asarray(values["reference_x_m"], float), np.asarray(values["reference_y_m"], float)], 1)
    return reference_from_polyline(xy, values)


def reference_from_polyline(xy: np.ndarray, values: dict) -> ReferencePath:
    """Raises ValueError for an unusable polyline, including one too long to resample (a hostile length of
    1e300 m overflows, 1e9 m would take terabytes)."""
    with np.errstate(over="ignore", invalid="ignore"):
        length_m = float(np.hypot(*np.diff(np.asarray(xy, float).reshape(-1, 2), axis=0).T).sum())
    if length_m > MAX_REFERENCE_LENGTH_M:  # NaN is not: ReferencePath names non-finite points itself
        raise ValueError(f"reference path is {length_m:.3g} m long; at most {MAX_REFERENCE_LENGTH_M:.0f} m accepted")
    return ReferencePath.from_polyline(xy, lane_width_m=values["lane_width_m"],
                                       lane_offsets_m=np.asarray(values["lane_offsets_m"], float),
                                       speed_limit_mps=PLANNER["speed_limit_mps"].core_value(values["speed_limit_mps"]))


class PlannerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("planner", **kwargs)
        self.params = ParameterSet(self, PARAMS, validate=_config_problem, on_change=self._apply_params)
        self.pipeline = PlanningPipeline(planner_config(self.params.values), reference_from_params(self.params.values),
                                         self.params["odom_timeout_s"])
        self._reference_from_params = True  # until /planning/reference_path arrives
        self.problems = InputProblems(self, "planner")
        self.ego: EgoState | None = None
        self.forecasts: ForecastSet | None = None
        self.last_plan: Plan | None = None
        self._planned_stamp_s = -float("inf")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(Odometry, topics.EGO_ODOM, self._on_odom, reliable)
        latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)  # a late planner skips to the newest
        self.create_subscription(PredictionArray, topics.PREDICTIONS, self._on_predictions, latest)
        self.create_subscription(Path, topics.REFERENCE_PATH, self._on_reference, latched)
        self.pub_plan = self.create_publisher(RiskAwarePlan, topics.PLAN, reliable)
        self.pub_path = self.create_publisher(Path, topics.PLAN_PATH, reliable)
        self.pub_markers = self.create_publisher(MarkerArray, topics.PLAN_MARKERS, 1)
        self._last_markers_s = -float("inf")
        self.timer = self.create_timer(1.0 / self.params["rate_hz"], self._on_timer)
        self.get_logger().info(f"planner ready: {self.params['risk_measure']} at {self.params['risk_level']}")

    def _apply_params(self, values: dict) -> None:
        self.pipeline.update_config(planner_config(values), values["odom_timeout_s"])
        self.timer.timer_period_ns = int(1e9 / values["rate_hz"])
        if self._reference_from_params:
            self.pipeline.reference = reference_from_params(values)

    def _frame_ok(self, frame_id: str, what: str) -> bool:
        if frame_id == self.params["frame_id"]:
            return True
        self.problems.report(ProblemKind.WRONG_FRAME,
                             f"{what} in frame '{frame_id}', expected '{self.params['frame_id']}'")
        return False

    def _on_odom(self, msg: Odometry) -> None:
        try:
            if self._frame_ok(msg.header.frame_id, "odometry"):
                self.ego = odometry_to_ego(msg, self.params["ego_length_m"], self.params["ego_width_m"])
                self._plan_on_event()
        except ValueError as exc:
            self.problems.report(ProblemKind.BAD_ODOMETRY, str(exc))

    def _on_predictions(self, msg: PredictionArray) -> None:
        try:
            if self._frame_ok(msg.header.frame_id, "predictions"):
                self.forecasts = forecast_set_from_msg(msg)
                self._plan_on_event()
        except ValueError as exc:
            self.problems.report(ProblemKind.BAD_PREDICTIONS, str(exc))

    def _plan_on_event(self) -> None:
        """Lock-step: plan once per instant, when odometry and forecasts of that instant are both in."""
        if not self.params["trigger_on_predictions"] or self.ego is None or self.forecasts is None:
            return
        stamp_s = self.forecasts.stamp_s
        if stamp_s < self._planned_stamp_s - TIME_JUMP_BACK_S:  # simulator reset or bag loop: start over
            self.problems.report(ProblemKind.TIME_JUMP, f"forecasts at {stamp_s:.3f} s after a plan at "
                                 f"{self._planned_stamp_s:.3f} s: lock-step planning restarted")
            self._planned_stamp_s = -float("inf")
        if self.ego.stamp_s + 1e-6 < stamp_s or stamp_s <= self._planned_stamp_s:
            return
        self._planned_stamp_s = stamp_s
        self._plan_and_publish(self.ego.stamp_s)

    def _on_reference(self, msg: Path) -> None:
        try:
            if not self._frame_ok(msg.header.frame_id, "reference path"):
                return
            xy = np.array([[p.pose.position.x, p.pose.position.y] for p in msg.poses], dtype=float).reshape(-1, 2)
            self.pipeline.reference = reference_from_polyline(xy, self.params.values)
            self._reference_from_params = False
        except ValueError as exc:
            self.problems.report(ProblemKind.BAD_REFERENCE, str(exc))

    def _on_timer(self) -> None:
        if self.ego is None or self.params["trigger_on_predictions"]:
            return
        self._plan_and_publish(self.get_clock().now().nanoseconds * 1e-9)

    def _plan_and_publish(self, now_s: float) -> None:
        self.publish(self.pipeline.step(self.ego, self.forecasts, now_s))

    def publish(self, plan: Plan) -> None:
        if not plan.ok:
            self.problems.report(ProblemKind.FALLBACK, plan.reason)
        frame = self.params["frame_id"]
        msg = plan_to_msg(plan, frame)
        self.pub_plan.publish(msg)
        self.pub_path.publish(plan_to_path(plan, frame))
        now_s = time.monotonic()
        if self.params["publish_markers"] and now_s - self._last_markers_s >= 1.0 / self.params["marker_rate_hz"]:
            self._last_markers_s = now_s
            self.pub_markers.publish(plan_markers(plan, frame, msg.header))
        self.last_plan = plan

