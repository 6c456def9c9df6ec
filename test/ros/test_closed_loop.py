"""The whole graph from the launch file (sim + predictor + planner) in lock-step over real DDS."""

from __future__ import annotations

import time

from mcap_ros2.reader import read_ros2_messages
from rclpy.executors import SingleThreadedExecutor

from rap_planner import topics
from rap_planner.msg import PredictionArray
from rap_planner.ros.bag_recorder import BagRecorder
from rap_planner.ros.compose import create_nodes
from rap_planner.ros.launch_xml import declared_args, launch_file, parse


def test_launch_file_declares_the_documented_arguments():
    args = declared_args(launch_file("sim.launch.xml"))
    assert {"scenario", "risk_level", "seed", "lockstep", "viz"} <= set(args)
    description = parse(launch_file("sim.launch.xml"), {"risk_level": "0.95"})
    planner = next(n for n in description.nodes if n.name == "planner")
    assert planner.params["risk_level"] == 0.95
    assert [f.name for f in planner.param_files] == ["planner.yaml", "highway_cutin.yaml"]


def test_lockstep_closed_loop_runs_and_records_a_bag(rclpy_context, tmp_path):
    description = parse(launch_file("sim.launch.xml"), {"lockstep": "true", "seed": "3"})
    nodes = create_nodes(description, context=rclpy_context)
    sim = next(n for n in nodes if n.get_name() == "sim")
    recorder = BagRecorder(tmp_path / "bag", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    for node in [*nodes, recorder]:
        executor.add_node(node)
    deadline = time.monotonic() + 90.0
    try:
        while sim.world.time_s < 3.0 and not sim.finished and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        recorder.close()
        for node in [*nodes, recorder]:
            node.destroy_node()
    assert sim.world.time_s >= 3.0 or sim.finished, f"simulation stalled at t={sim.world.time_s}"
    assert sim.plan_timeouts == 0, "lock-step: every step must have been driven by a fresh plan"
    frames = sim.recorder.frames
    assert len(frames) >= 25 and all(f.plan_xy_m is not None for f in frames[1:])
    recorded = {m.channel.topic for m in read_ros2_messages(str(next((tmp_path / "bag").glob("*.mcap"))))}
    assert {topics.TRACKED_AGENTS, topics.EGO_ODOM, topics.PREDICTIONS, topics.PLAN} <= recorded


def test_foxglove_flag_adds_a_live_websocket_server(rclpy_context):
    import socket

    description = parse(launch_file("sim.launch.xml"), {"foxglove": "true"})
    assert [n.executable for n in description.nodes][-1] == "foxglove_bridge"
    assert "foxglove_bridge" not in [n.executable for n in parse(launch_file("sim.launch.xml")).nodes]
    from rclpy.parameter import Parameter

    from rap_planner.ros.foxglove_bridge import FoxgloveBridge

    bridge = FoxgloveBridge(context=rclpy_context, parameter_overrides=[Parameter("port", value=18765)])
    try:
        with socket.create_connection(("127.0.0.1", 18765), timeout=5.0):
            pass
    finally:
        bridge.destroy_node()


def test_lockstep_loop_with_risk_biased_samples(rclpy_context):
    """The predictor publishes RAP-biased weighted samples for the ego's plan; the planner plans on them."""
    description = parse(launch_file("sim.launch.xml"), {"lockstep": "true", "seed": "5"})
    next(n for n in description.nodes if n.name == "predictor").params["biased_samples"] = 16
    nodes = create_nodes(description, context=rclpy_context)
    sim, predictor, planner = nodes
    seen = []
    predictor.create_subscription(PredictionArray, topics.PREDICTIONS, seen.append, 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    for node in nodes:
        executor.add_node(node)
    deadline = time.monotonic() + 60.0
    try:
        while sim.world.time_s < 2.0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
    biased = [m for m in seen if m.num_samples == 16]
    assert biased, "no prediction carried biased samples"
    m = biased[-1]
    assert abs(sum(m.sample_weights) - 1.0) < 1e-4 and abs(m.sample_risk_level - 0.9) < 1e-6
    assert all(len(a.sample_x) == 16 * m.num_steps for a in m.agents)
    assert planner.last_plan is not None and planner.last_plan.ok and planner.last_plan.num_scenarios == 16
