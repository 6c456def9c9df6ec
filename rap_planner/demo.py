"""`make demo`: one closed-loop episode (SUMO + predictor + planner over DDS), recorded and rendered."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rap_planner.ros.launch_xml import launch_file, parse

DEMO_ARGS = {"scenario": "highway_cutin", "risk_level": "0.9", "seed": "0", "lockstep": "true"}
WALL_LIMIT_S = 300.0  # the episode is about 30 s of simulated time; lock-step keeps it correct on a busy machine


def run_demo(out_dir: str, launch_args: dict[str, str] | None = None, wall_limit_s: float = WALL_LIMIT_S) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rich.console import Console

    from rap_planner.ros.bag_recorder import BagRecorder
    from rap_planner.ros.compose import create_nodes
    from rap_planner.sim.render import render_episode

    console = Console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args = {**DEMO_ARGS, **(launch_args or {})}
    description = parse(launch_file("sim.launch.xml"), args)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init()
    nodes = create_nodes(description)
    sim = next(n for n in nodes if n.get_name() == "sim")
    bag_path = out / "episode_bag"
    if bag_path.exists():
        import shutil

        shutil.rmtree(bag_path)
    recorder = BagRecorder(bag_path)
    executor = SingleThreadedExecutor()
    for node in [*nodes, recorder]:
        executor.add_node(node)
    start = time.monotonic()
    with console.status("closed loop running") as status:
        while not sim.finished and time.monotonic() - start < wall_limit_s:
            executor.spin_once(timeout_sec=0.05)
            status.update(f"closed loop: t = {sim.world.time_s:5.1f} s simulated, "
                          f"{time.monotonic() - start:5.1f} s wall")
    wall_s = time.monotonic() - start
    executor.shutdown()
    recorder.close()
    frames = sim.recorder.frames
    metrics = sim.recorder.metrics
    finished = sim.finished
    summary = {**sim.summary, "finished": finished, "launch_args": args, "wall_s": round(wall_s, 1),
               "steps": len(frames),
               "progress_m": round(metrics.progress_m, 1), "min_distance_m": round(metrics.min_distance_m, 2),
               "min_ttc_s": round(metrics.min_ttc_s, 2) if metrics.min_ttc_s < 1e9 else None,
               "fallback_count": metrics.fallback_count, "bag_messages": recorder.counts}
    for node in [*nodes, recorder]:
        node.destroy_node()
    rclpy.try_shutdown()
    with console.status("rendering"):
        written = render_episode(frames, out / "episode.png", out / "episode.gif", scenario=args["scenario"],
                                 png_frame=sim.recorder.closest_frame) if frames else []
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    console.print(f"[bold]episode[/]: {summary.get('events') or 'stopped at the wall-clock limit'}; "
                  f"{summary['steps']} steps, progress {summary['progress_m']} m, "
                  f"min gap {summary['min_distance_m']} m, fallbacks {summary['fallback_count']}")
    for path in [*written, bag_path, out / "summary.json"]:
        console.print(f"  wrote {path}")
    if not finished:
        console.print(f"[bold red]error[/]: the episode did not finish within {wall_limit_s:.0f} s of wall time "
                      f"(stopped at t = {sim.world.time_s:.1f} s simulated); the outputs above hold what ran")
        return 1
    return 0
