"""Real-data import -> replay launch: an NGSIM file becomes a bag that predictor + planner replay."""

from __future__ import annotations

import time
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor

from rap_planner import topics
from rap_planner.bagtools.convert import ngsim_to_bag
from rap_planner.ros.bag_player import bag_info, read_raw
from rap_planner.ros.compose import create_nodes
from rap_planner.ros.launch_xml import launch_file, parse

NGSIM_SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "ngsim" / "trajectories-sample.csv"


def test_ngsim_bag_replays_through_predictor_and_planner(rclpy_context, tmp_path):
    source = ngsim_to_bag(NGSIM_SAMPLE, tmp_path / "ngsim_bag", ego_id=7)
    frames = bag_info(source).topics[topics.TRACKED_AGENTS][1]
    output = tmp_path / "replay_out"
    description = parse(launch_file("replay.launch.xml"), {"bag": str(source), "output": str(output)})
    nodes = create_nodes(description, context=rclpy_context)
    player = next(n for n in nodes if n.get_name() == "bag_player")
    recorder = next(n for n in nodes if n.get_name() == "bag_recorder")
    executor = SingleThreadedExecutor(context=rclpy_context)
    for node in nodes:
        executor.add_node(node)
    deadline = time.monotonic() + 60.0
    try:
        while time.monotonic() < deadline and recorder.counts.get(topics.PLAN, 0) < frames:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()  # the recorder node closes its bag here
    assert player.finished and player.published == 2 * frames
    counts = {t: n for t, (_, n) in bag_info(output).topics.items()}
    assert counts[topics.TRACKED_AGENTS] == frames and counts[topics.PLAN] == frames
    assert counts[topics.PREDICTIONS] == frames
    assert len(list(read_raw(output, {topics.PLAN}))) == frames
