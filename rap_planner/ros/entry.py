"""Executables by name (`ros2 run rap_planner <name>`, launch files, `rap-planner up`)."""

from __future__ import annotations

import importlib
import sys

from rap_planner.runtime_tuning import tune_process

NODES = {
    "predictor_node": "rap_planner.ros.predictor_node:PredictorNode",
    "planner_node": "rap_planner.ros.planner_node:PlannerNode",
    "sim_node": "rap_planner.ros.sim_node:SimNode",
    "bag_player_node": "rap_planner.ros.bag_player:BagPlayerNode",
    "bag_recorder_node": "rap_planner.ros.bag_recorder:BagRecorderNode",
    "foxglove_bridge": "rap_planner.ros.foxglove_bridge:FoxgloveBridge",
}


def node_class(executable: str):
    if executable not in NODES:
        raise KeyError(f"unknown executable '{executable}'; rap_planner has {', '.join(sorted(NODES))}")
    module, cls = NODES[executable].split(":")
    return getattr(importlib.import_module(module), cls)


def main(executable: str, argv: list[str] | None = None) -> int:
    """Run one node in its own process, with the usual `--ros-args` handling."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    tune_process()
    rclpy.init(args=sys.argv if argv is None else argv)
    node = node_class(executable)()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv))
