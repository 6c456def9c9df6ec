"""A test-side node that feeds the stack's input topics and watches its outputs and /diagnostics.

It publishes with the QoS the nodes subscribe with (the reference path latched, like a map server)
and can publish raw bytes on every input topic (rclpy hands ``bytes`` straight to the middleware).
Exceptions raised in callbacks of nodes spun by ``spin`` propagate out of it: an in-process node
whose callback raises fails the test right there, with the traceback.
"""

from __future__ import annotations

import time
from collections import Counter

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from rap_planner import topics
from rap_planner.bench.e2e import LANES_Y_M, highway_traffic
from rap_planner.core.types import EgoState
from rap_planner.msg import PredictionArray, RiskAwarePlan, TrackedAgentArray
from rap_planner.ros.conversions import ego_to_odometry, plan_from_msg, tracked_agents_to_msg

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TOPICS = {
    "tracks": (topics.TRACKED_AGENTS, TrackedAgentArray, RELIABLE),
    "odom": (topics.EGO_ODOM, Odometry, RELIABLE),
    "predictions": (topics.PREDICTIONS, PredictionArray, RELIABLE),
    "reference": (topics.REFERENCE_PATH, Path, LATCHED),
}
# planner parameters for the synthetic highway (as the end-to-end bench runs it)
HIGHWAY_PLANNER_PARAMS = {"lane_offsets_m": list(LANES_Y_M), "speed_limit_mps": 33.0}


def straight_path(length_m: float = 1000.0, frame_id: str = "map", step_m: float = 50.0) -> Path:
    path = Path()
    path.header.frame_id = frame_id
    for i in range(int(length_m / step_m) + 1):
        pose = PoseStamped()
        pose.header.frame_id = frame_id
        pose.pose.position.x = -200.0 + i * step_m
        path.poses.append(pose)
    return path


class Harness:
    """Publishes on the stack's inputs; records plans, predictions and the latest /diagnostics per node."""

    def __init__(self, context, nodes=(), name: str = "hostile_source"):
        self.context = context
        self.node = rclpy.create_node(name, context=context)
        self.pubs = {k: self.node.create_publisher(t, topic, qos) for k, (topic, t, qos) in TOPICS.items()}
        self.sent: Counter[str] = Counter()
        self.plans: list[tuple[float, RiskAwarePlan]] = []  # (receive time, message)
        self.predictions: list[tuple[float, PredictionArray]] = []
        self.diagnostics: dict[str, dict[str, str]] = {}  # status name -> {key: value} (latest)
        self.diagnostic_messages: dict[str, str] = {}  # status name -> last problem of each kind
        self.node.create_subscription(RiskAwarePlan, topics.PLAN,
                                      lambda m: self.plans.append((time.monotonic(), m)), RELIABLE)
        self.node.create_subscription(PredictionArray, topics.PREDICTIONS,
                                      lambda m: self.predictions.append((time.monotonic(), m)), RELIABLE)
        self.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)
        self._t0_s: float | None = None
        self.executor = SingleThreadedExecutor(context=context)
        self.nodes = [self.node, *nodes]
        for node in self.nodes:
            self.executor.add_node(node)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}
            self.diagnostic_messages[status.name] = status.message

    def problem_counts(self, who: str) -> Counter[str]:
        return Counter({k: int(v) for k, v in self.diagnostics.get(f"rap_planner/{who}", {}).items()})

    def now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.executor.spin_once(timeout_sec=max(0.0, min(0.01, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def spin_until(self, condition, timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.02)

    def wait_for_subscribers(self, keys=tuple(TOPICS), timeout_s: float = 30.0) -> None:
        self.spin_until(lambda: all(self.pubs[k].get_subscription_count() > 0 for k in keys), timeout_s,
                        f"subscribers on {', '.join(keys)}")

    def send(self, key: str, msg, spin_s: float = 0.0) -> None:
        """Publish a message (or raw ``bytes``) on input ``key`` and optionally spin a little."""
        self.pubs[key].publish(msg)
        self.sent[key] += 1
        if spin_s:
            self.spin(spin_s)

    def send_good(self, stamp_s: float | None = None, agents: int = 8, spin_s: float = 0.0) -> float:
        """One instant of the synthetic 3-lane highway (tracks and ego odometry) at ``stamp_s`` (default: now).

        Positions follow the time since the first good instant, so the scene moves on smoothly."""
        stamp_s = self.now_s() if stamp_s is None else stamp_s
        if self._t0_s is None:
            self._t0_s = stamp_s
        t = stamp_s - self._t0_s
        self.send("odom", ego_to_odometry(EgoState(stamp_s, 25.0 * t, 0.0, 0.0, 25.0)))
        self.send("tracks", tracked_agents_to_msg(highway_traffic(agents, t), stamp_s), spin_s)
        return stamp_s

    def plans_since(self, t_monotonic: float):
        return [plan_from_msg(m) for t, m in self.plans if t >= t_monotonic]

    def close(self) -> None:
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
