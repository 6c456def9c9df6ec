"""Counted, throttled reporting of bad input, published on /diagnostics once per second."""

from __future__ import annotations

import enum
from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from rap_planner import topics

LOG_THROTTLE_S = 2.0


class ProblemKind(str, enum.Enum):
    """What a node counts: the value is the key of its count on /diagnostics and the tag of its log line."""

    WRONG_FRAME = "wrong_frame"  # an input stamped in another frame than the node's frame_id
    BAD_AGENT = "bad_agent"  # a tracked agent that core.validation rejects
    BAD_TRACKS = "bad_tracks"  # what the track histories dropped or restarted (stale message, reused id)
    OVER_CAPACITY = "over_capacity"  # agents beyond the predictor's max_agents
    BAD_ODOMETRY = "bad_odometry"
    BAD_PREDICTIONS = "bad_predictions"  # a forecast message that core.validation rejects
    BAD_REFERENCE = "bad_reference"
    TIME_JUMP = "time_jump"  # the clock went back
    FALLBACK = "fallback"  # a plan that is not ok
    EXCEPTION = "exception"  # a callback's catch-all: a bug


class InputProblems:
    """One counter per problem kind; a log line per kind at most every ``LOG_THROTTLE_S``."""

    def __init__(self, node: Node, name: str):
        self._node = node
        self._name = name
        self.counts: Counter[ProblemKind] = Counter()
        self._last_message: dict[ProblemKind, str] = {}
        self._pub = node.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        node.create_timer(1.0, self.publish)

    def report(self, kind: ProblemKind, message: str) -> None:
        self.counts[kind] += 1
        self._last_message[kind] = message
        self._node.get_logger().warning(f"[{kind.value}] {message} (seen {self.counts[kind]}x)",
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def publish(self) -> None:
        level = DiagnosticStatus.WARN if self.counts else DiagnosticStatus.OK
        status = DiagnosticStatus(level=level, name=f"rap_planner/{self._name}",
                                  hardware_id=self._node.get_fully_qualified_name(),
                                  message="; ".join(f"{k.value}: {v}" for k, v in sorted(self._last_message.items()))
                                  or "inputs ok")
        status.values = [KeyValue(key=k.value, value=str(v)) for k, v in sorted(self.counts.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)
