"""`rap-planner param get|set`: the `ros2 param` verbs for machines without the ROS 2 CLI."""

from __future__ import annotations

import os

import rclpy
import yaml
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient


def parse_value(text: str):
    """Same typing as `ros2 param set`: YAML scalars (0.9 -> double, 3 -> int, true -> bool)."""
    return yaml.safe_load(text)


class _Session:
    """A short-lived node in its own context, so the CLI never touches a caller's context."""

    def __init__(self, target: str, timeout_s: float):
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"rap_planner_param_client_{os.getpid()}", context=self.context)
        self.client = AsyncParameterClient(self.node, target)
        self.timeout_s = timeout_s
        if not self.client.wait_for_services(timeout_sec=timeout_s):
            self.close()
            raise TimeoutError(f"node {target} did not answer within {timeout_s} s "
                               "(is it running, with the same ROS_DOMAIN_ID?)")

    def wait(self, future):
        executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        executor.spin_until_future_complete(future, timeout_sec=self.timeout_s)
        executor.remove_node(self.node)
        if not future.done():
            raise TimeoutError("parameter service call timed out")
        return future.result()

    def close(self) -> None:
        self.node.destroy_node()
        self.context.try_shutdown()


def get_parameter(node: str, name: str, timeout_s: float = 5.0):
    session = _Session(node, timeout_s)
    try:
        response = session.wait(session.client.get_parameters([name]))
        if not response.values:
            raise KeyError(f"{node} has no parameter {name}")
        return parameter_value_to_python(response.values[0])
    finally:
        session.close()


def set_parameter(node: str, name: str, value, timeout_s: float = 5.0) -> tuple[bool, str]:
    """(accepted, reason). A string value is parsed as YAML first, like `ros2 param set`."""
    if isinstance(value, str):
        value = parse_value(value)
    session = _Session(node, timeout_s)
    try:
        response = session.wait(session.client.set_parameters([Parameter(name, value=value)]))
        result = response.results[0]
        return bool(result.successful), result.reason
    finally:
        session.close()
