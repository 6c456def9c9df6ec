"""Counted, throttled reporting of bad input, published on /diagnostics once per second."""

from __future__ import annotations

from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

LOG_THROTTLE_S = 2.0


class InputProblems:
    """One counter per problem kind; a log line per kind at most every ``LOG_THROTTLE_S``."""

    def __init__(self, node: Node, name: str):
        self._node = node
        self._name = name
        self.counts: Counter[str] = Counter()
        self._last_message: dict[str, str] = {}
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_timer(1.0, self.publish)

    def report(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self._last_message[kind] = message
        self._node.get_logger().warning(f"[{kind}] {message} (seen {self.counts[kind]}x)",
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def publish(self) -> None:
        level = DiagnosticStatus.WARN if self.counts else DiagnosticStatus.OK
        status = DiagnosticStatus(level=level, name=f"rap_planner/{self._name}",
                                  hardware_id=self._node.get_fully_qualified_name(),
                                  message="; ".join(f"{k}: {v}" for k, v in sorted(self._last_message.items()))
                                  or "inputs ok")
        status.values = [KeyValue(key=k, value=str(v)) for k, v in sorted(self.counts.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)
