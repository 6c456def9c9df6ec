"""Runs a launch description's nodes composed in one process on one executor.

Single-threaded on purpose: callbacks run in a fixed order (reproducible lock-step runs), and Python
callbacks gain no parallelism from rclpy's MultiThreadedExecutor under the GIL.
"""

from __future__ import annotations

import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter

from rap_planner.ros.entry import node_class
from rap_planner.ros.launch_xml import LaunchDescription

FINISH_GRACE_S = 2.0


def create_nodes(description: LaunchDescription, context=None) -> list:
    nodes = []
    for spec in description.nodes:
        overrides = [Parameter(name, value=value) for name, value in spec.params.items()]
        nodes.append(node_class(spec.executable)(context=context, cli_args=spec.ros_args(),
                                                 parameter_overrides=overrides))
    return nodes


def run(description: LaunchDescription, duration_s: float | None = None) -> int:
    """Spin until Ctrl-C (or ``duration_s``, or a node asking to stop via ``finished``)."""
    rclpy.init()
    nodes = create_nodes(description)
    executor = SingleThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while rclpy.ok() and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
            if end is None and any(getattr(node, "finished", False) for node in nodes):
                end = time.monotonic() + FINISH_GRACE_S  # let the last messages through the graph
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
