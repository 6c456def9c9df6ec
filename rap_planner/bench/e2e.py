"""`rap-planner bench e2e`: tracked agents in -> plan out, over DDS, with the stack in its own process.

The stack (predictor + planner, event-triggered as in lock-step simulation) runs in a child process;
this process publishes a synthetic 3-lane highway at ``rate_hz`` and times each plan against the
publication of the tracks it answers. Baseline in the same run: the DDS round trip of the same
tracks message through a relay in the child process, without prediction or planning.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from rap_planner import topics
from rap_planner.core.types import EgoState, TrackedAgent
from rap_planner.runtime_tuning import tune_process

LANES_Y_M = (-3.5, 0.0, 3.5)
EGO_SPEED_MPS = 25.0  # the benches' ego drives along y = 0 at this speed
ROAD_PER_AGENT_M = 10.0  # window length per agent over the three lanes: ~30 m per vehicle in each lane
WINDOW_BEHIND = 0.3  # share of the window behind the ego


def highway_traffic(num_agents: int, t_s: float, seed: int = 0) -> list[TrackedAgent]:
    """Agents on three lanes in a window that moves with the ego, each at its own constant speed.

    The window is ``ROAD_PER_AGENT_M`` per agent long (30 % behind the ego), so more agents means a wider
    tracked area at the same traffic density, and the density holds for a run of any length: an agent that
    drifts out of one end re-enters at the other as a new track (a new id), as vehicles leave and enter
    sensor range.
    """
    rng = np.random.default_rng(seed)
    window_m = ROAD_PER_AGENT_M * max(num_agents, 1)
    start = rng.uniform(0.0, window_m, num_agents)
    v = rng.uniform(18.0, 30.0, num_agents)
    lane = rng.integers(0, len(LANES_Y_M), num_agents)
    travelled = start + (v - EGO_SPEED_MPS) * t_s
    laps = np.floor(travelled / window_m).astype(np.int64)
    x = EGO_SPEED_MPS * t_s + travelled - laps * window_m - WINDOW_BEHIND * window_m
    generation = np.where(laps >= 0, 2 * laps, -2 * laps - 1)  # 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
    ids = 1 + np.arange(num_agents) + num_agents * generation
    return [TrackedAgent(int(ids[i]), t_s, float(x[i]), LANES_Y_M[lane[i]], 0.0, float(v[i]), 0.0)
            for i in range(num_agents)]


def _child_command(role: str, overrides: dict[str, dict] | None = None) -> list[str]:
    """Command of a child process; ``overrides`` maps "predictor" / "planner" to parameter values."""
    return [sys.executable, "-m", "rap_planner.bench.e2e", role, json.dumps(overrides or {})]


def run_e2e_bench(agents: int = 32, rate_hz: float = 10.0, duration_s: float = 20.0, warmup_s: float = 3.0) -> dict:
    import rclpy

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    rclpy.init()
    try:
        relay_ms = _measure("relay", agents, rate_hz, min(duration_s, 8.0), warmup_s, env)
        stack_ms = _measure("stack", agents, rate_hz, duration_s, warmup_s, env)
    finally:
        rclpy.try_shutdown()
    result = {"agents": agents, "rate_hz": rate_hz, "plans": len(stack_ms),
              "p50_ms": float(np.percentile(stack_ms, 50)), "p95_ms": float(np.percentile(stack_ms, 95)),
              "relay_p50_ms": float(np.percentile(relay_ms, 50)), "relay_p95_ms": float(np.percentile(relay_ms, 95))}
    print(f"end to end, {agents} agents at {rate_hz:g} Hz, {len(stack_ms)} plans")
    print(f"  tracks -> plan (predictor + planner over DDS): p50 {result['p50_ms']:7.1f} ms   "
          f"p95 {result['p95_ms']:7.1f} ms")
    print(f"  tracks -> relay -> back (DDS alone, baseline):  p50 {result['relay_p50_ms']:7.1f} ms   "
          f"p95 {result['relay_p95_ms']:7.1f} ms")
    return result


def _measure(role: str, agents: int, rate_hz: float, duration_s: float, warmup_s: float, env: dict) -> list[float]:
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from rap_planner.msg import RiskAwarePlan, TrackedAgentArray
    from rap_planner.ros.conversions import ego_to_odometry, stamp_to_s, tracked_agents_to_msg

    child = subprocess.Popen(_child_command(role), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node(f"e2e_source_{role}")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_tracks = node.create_publisher(TrackedAgentArray, topics.TRACKED_AGENTS, qos)
    pub_odom = node.create_publisher(Odometry, topics.EGO_ODOM, qos)
    sent: dict[float, float] = {}
    latencies: list[float] = []
    answer_type, answer_topic = (TrackedAgentArray, topics.BENCH_RELAY) if role == "relay" else \
        (RiskAwarePlan, topics.PLAN)

    def on_answer(msg) -> None:
        # a plan answers the tracks its forecasts were made of (a late planner may use newer odometry)
        stamp = msg.prediction_stamp if role == "stack" else msg.header.stamp
        t_pub = sent.get(round(stamp_to_s(stamp), 6))
        if t_pub is not None:
            latencies.append(1e3 * (time.perf_counter() - t_pub))

    node.create_subscription(answer_type, answer_topic, on_answer, qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60.0
        while pub_tracks.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < warmup_s + duration_s:
            stamp_s = 1000.0 + k / rate_hz
            msg = tracked_agents_to_msg(highway_traffic(agents, stamp_s - 1000.0), stamp_s)
            if k / rate_hz >= warmup_s:
                sent[round(stamp_s, 6)] = time.perf_counter()
            pub_tracks.publish(msg)
            x_m = EGO_SPEED_MPS * (stamp_s - 1000.0)
            pub_odom.publish(ego_to_odometry(EgoState(stamp_s, x_m, 0.0, 0.0, EGO_SPEED_MPS)))
            k += 1
            next_t = t0 + k / rate_hz
            while time.monotonic() < next_t:
                executor.spin_once(timeout_sec=max(0.0, next_t - time.monotonic()))
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        child.terminate()
        child.wait(timeout=10)
    if not latencies:
        raise RuntimeError(f"no answers from the {role} process")
    return latencies


def _stack_nodes(role: str, overrides: dict[str, dict]) -> list:
    """The stack's nodes for a child role, set up for event-triggered (lock-step) operation."""
    from rclpy.parameter import Parameter

    from rap_planner.ros.planner_node import PlannerNode
    from rap_planner.ros.predictor_node import PredictorNode

    nodes = []
    if role in ("stack", "predictor"):
        params = {"trigger_on_tracks": True, "publish_markers": False, **overrides.get("predictor", {})}
        nodes.append(PredictorNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    if role in ("stack", "planner"):
        params = {"trigger_on_predictions": True, "lane_offsets_m": list(LANES_Y_M), "speed_limit_mps": 33.0,
                  "publish_markers": False, **overrides.get("planner", {})}
        nodes.append(PlannerNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    return nodes


def _child(role: str, overrides: dict[str, dict]) -> None:
    """The other side: the stack (composed, or one of its nodes), or a relay that echoes tracks straight back."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from rap_planner.msg import TrackedAgentArray

    tune_process()
    rclpy.init()
    if role == "relay":
        node = rclpy.create_node("e2e_relay")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub = node.create_publisher(TrackedAgentArray, topics.BENCH_RELAY, qos)
        node.create_subscription(TrackedAgentArray, topics.TRACKED_AGENTS, pub.publish, qos)
        nodes = [node]
    else:
        nodes = _stack_nodes(role, overrides)
    executor = SingleThreadedExecutor()
    for n in nodes:
        executor.add_node(n)
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        executor.spin()


if __name__ == "__main__":
    _child(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
