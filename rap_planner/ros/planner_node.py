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

from rap_planner.config import planner_config
from rap_planner.core.planner import RiskAwarePlanner
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.risk import RISK_MEASURES
from rap_planner.core.types import EgoState, ForecastSet, Plan
from rap_planner.msg import PredictionArray, RiskAwarePlan
from rap_planner.ros.conversions import (
    forecast_set_from_msg,
    odometry_to_ego,
    plan_to_msg,
    plan_to_path,
)
from rap_planner.ros.diagnostics import InputProblems
from rap_planner.ros.markers import plan_markers
from rap_planner.ros.params import ParameterSet, ParamSpec

PARAMS = (
    ParamSpec("risk_measure", "cvar", "Risk measure of the cost distribution.", choices=tuple(RISK_MEASURES)),
    ParamSpec("risk_level", 0.9, "Risk level alpha in [0, 1): 0 is risk-neutral, towards 1 the worst case [-].",
              0.0, 0.999),
    ParamSpec("num_scenarios", 64, "Joint scenarios drawn from the forecasts per cycle [-].", 1, 4096),
    ParamSpec("horizon_s", 5.0, "Planning horizon [s].", 1.0, 10.0),
    ParamSpec("rate_hz", 10.0, "Planning rate [Hz].", 0.5, 50.0),
    ParamSpec("prediction_timeout_s", 0.5, "Forecasts older than this trigger the braking fallback [s].", 0.05, 5.0),
    ParamSpec("odom_timeout_s", 0.5, "Odometry older than this triggers the braking fallback [s].", 0.05, 5.0),
    ParamSpec("target_speed_mps", 0.0, "Desired cruise speed; 0: the reference's speed limit [m/s].", 0.0, 60.0),
    ParamSpec("speed_limit_mps", 0.0, "Speed limit of the reference path; 0: none [m/s].", 0.0, 60.0),
    ParamSpec("w_collision", 20000.0, "Cost per second of full footprint overlap [-].", 0.0, 1e7),
    ParamSpec("w_ttc", 1000.0, "Scale of RAP's time-to-collision cost, per second [-].", 0.0, 1e7),
    ParamSpec("w_progress", 1.0, "Cost weight of speed tracking [-].", 0.0, 1e6),
    ParamSpec("w_comfort", 0.1, "Cost weight of acceleration and jerk [-].", 0.0, 1e6),
    ParamSpec("w_lane", 1.0, "Cost weight of lateral offset from the target lane [-].", 0.0, 1e6),
    ParamSpec("trigger_on_predictions", False, "Plan as soon as forecasts and odometry of one instant are in "
              "(lock-step simulation) instead of on the timer."),
    ParamSpec("refine", True, "Refine the best candidate with the cvxpy CVaR program."),
    ParamSpec("cycle_budget_s", 0.0, "Skip the refinement when it would end a plan later than this after it "
              "started, publishing the best sampled candidate (real-time use); 0: always refine [s].", 0.0, 10.0),
    ParamSpec("seed", 0, "Seed of the scenario sampler [-].", 0, 2**31 - 1),
    ParamSpec("frame_id", "map", "Planning frame (REP 105); inputs in other frames are rejected."),
    ParamSpec("ego_length_m", 4.5, "Ego footprint length [m].", 1.0, 20.0),
    ParamSpec("ego_width_m", 1.8, "Ego footprint width [m].", 0.5, 4.0),
    ParamSpec("reference_x_m", [0.0, 1000.0], "Default reference path x [m] until /planning/reference_path arrives."),
    ParamSpec("reference_y_m", [0.0, 0.0], "Default reference path y [m]."),
    ParamSpec("lane_width_m", 3.5, "Lane width [m].", 2.0, 6.0),
    ParamSpec("lane_offsets_m", [0.0], "Lateral offsets of usable lanes from the reference, left positive [m]."),
    ParamSpec("publish_markers", True, "Publish /viz/plan markers (the plan and a spread of scored candidates)."),
    ParamSpec("marker_rate_hz", 5.0, "Marker publishing rate: building them costs about as much as a tenth of a "
              "plan [Hz].", 0.1, 50.0),
)


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
                                       speed_limit_mps=values["speed_limit_mps"] or None)


class PlannerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("planner", **kwargs)
        self.params = ParameterSet(self, PARAMS, validate=_config_problem, on_change=self._apply_params)
        self.planner = RiskAwarePlanner(planner_config(self.params.values))
        self.reference = reference_from_params(self.params.values)
        self._reference_from_params = True  # until /planning/reference_path arrives
        self.problems = InputProblems(self, "planner")
        self.ego: EgoState | None = None
        self.forecasts: ForecastSet | None = None
        self.last_plan: Plan | None = None
        self._planned_stamp_s = -float("inf")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(Odometry, "/ego/odom", self._on_odom, reliable)
        latest = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)  # a late planner skips to the newest
        self.create_subscription(PredictionArray, "/prediction/agents", self._on_predictions, latest)
        self.create_subscription(Path, "/planning/reference_path", self._on_reference, latched)
        self.pub_plan = self.create_publisher(RiskAwarePlan, "/planning/plan", reliable)
        self.pub_path = self.create_publisher(Path, "/planning/path", reliable)
        self.pub_markers = self.create_publisher(MarkerArray, "/viz/plan", 1)
        self._last_markers_s = -float("inf")
        self.timer = self.create_timer(1.0 / self.params["rate_hz"], self._on_timer)
        self.get_logger().info(f"planner ready: {self.params['risk_measure']} at {self.params['risk_level']}")

    def _apply_params(self, values: dict) -> None:
        self.planner.update_config(planner_config(values))
        self.timer.timer_period_ns = int(1e9 / values["rate_hz"])
        if self._reference_from_params:
            self.reference = reference_from_params(values)

    def _frame_ok(self, frame_id: str, what: str) -> bool:
        if frame_id == self.params["frame_id"]:
            return True
        self.problems.report("wrong_frame", f"{what} in frame '{frame_id}', expected '{self.params['frame_id']}'")
        return False

    def _on_odom(self, msg: Odometry) -> None:
        try:
            if self._frame_ok(msg.header.frame_id, "odometry"):
                self.ego = odometry_to_ego(msg, self.params["ego_length_m"], self.params["ego_width_m"])
                self._plan_on_event()
        except ValueError as exc:
            self.problems.report("bad_odometry", str(exc))

    def _on_predictions(self, msg: PredictionArray) -> None:
        try:
            if self._frame_ok(msg.header.frame_id, "predictions"):
                self.forecasts = forecast_set_from_msg(msg)
                self._plan_on_event()
        except ValueError as exc:
            self.problems.report("bad_predictions", str(exc))

    def _plan_on_event(self) -> None:
        """Lock-step: plan once per instant, when odometry and forecasts of that instant are both in."""
        if not self.params["trigger_on_predictions"] or self.ego is None or self.forecasts is None:
            return
        stamp_s = self.forecasts.stamp_s
        if stamp_s < self._planned_stamp_s - TIME_JUMP_BACK_S:  # simulator reset or bag loop: start over
            self.problems.report("time_jump", f"forecasts at {stamp_s:.3f} s after a plan at "
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
            self.reference = reference_from_polyline(xy, self.params.values)
            self._reference_from_params = False
        except ValueError as exc:
            self.problems.report("bad_reference", str(exc))

    def _on_timer(self) -> None:
        if self.ego is None or self.params["trigger_on_predictions"]:
            return
        self._plan_and_publish(self.get_clock().now().nanoseconds * 1e-9)

    def _plan_and_publish(self, now_s: float) -> None:
        try:
            plan = self.compute(now_s)
        except Exception as exc:  # never let a planner bug stop the node: brake instead
            self.problems.report("exception", f"planning failed: {exc!r}")
            plan = self.planner.fallback_plan(self.ego, self.reference, now_s, f"planner exception: {exc!r}")
        self.publish(plan)

    def compute(self, now_s: float) -> Plan:
        ego = self.ego
        if now_s - ego.stamp_s > self.params["odom_timeout_s"]:
            return self.planner.fallback_plan(ego, self.reference, now_s,
                                              f"stale odometry ({now_s - ego.stamp_s:.2f} s old)")
        start = time.perf_counter()
        plan = self.planner.plan(ego, self.forecasts, self.reference, now_s)
        plan.planning_time_s = time.perf_counter() - start
        return plan

    def publish(self, plan: Plan) -> None:
        if not plan.ok:
            self.problems.report("fallback", plan.reason)
        frame = self.params["frame_id"]
        msg = plan_to_msg(plan, frame)
        self.pub_plan.publish(msg)
        self.pub_path.publish(plan_to_path(plan, frame))
        now_s = time.monotonic()
        if self.params["publish_markers"] and now_s - self._last_markers_s >= 1.0 / self.params["marker_rate_hz"]:
            self._last_markers_s = now_s
            self.pub_markers.publish(plan_markers(plan, frame, msg.header))
        self.last_plan = plan

