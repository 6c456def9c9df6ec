"""`rap-planner bench soak`: the stack under sustained load, for minutes, with its memory watched.

The stack runs in child processes, event-triggered as in lock-step simulation (every tracks message
is predicted and planned on): the predictor and the planner each in its own process as ``ros2 launch``
runs them (they work in parallel, a pipeline), or with ``composed=True`` both on one executor in one
process as ``rap-planner up`` runs them. The predictor's ``max_agents`` is raised above the agent count
so every agent is tracked and forecast (the default 64 would silently leave most of a 200-agent scene
out). This process publishes the synthetic 3-lane highway (``e2e.highway_traffic``, constant density)
and ego odometry at ``rate_hz`` and measures

- plan latency: publication of a tracks message -> arrival of the first plan made on its forecasts (the
  plan's ``prediction_stamp``); ego odometry is published with the tracks, as a vehicle's runs on its own;
- drops: tracks sent vs plans and predictions received for them (a stack that cannot keep up loses
  messages: the reliable queues keep the last 10);
- memory: RSS of the stack's processes together (VmRSS from /proc/<pid>/status) after warm-up and at the end.

Predictions are counted from raw CDR (their header stamp only), so this process does not spend a
core deserialising 200-agent forecasts it never reads.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from rap_planner import topics
from rap_planner.bench.e2e import EGO_SPEED_MPS, _child_command, highway_traffic
from rap_planner.core.types import EgoState

T0_S = 1000.0  # stamp of the first message (as the end-to-end bench)
PROGRESS_EVERY_S = 30.0
RSS_EVERY_S = 5.0
DRAIN_S = 3.0


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` [MB] (VmRSS, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def _cdr_stamp_s(data: bytes) -> float:
    """header.stamp of a serialised message whose first field is a std_msgs/Header (after the 4-byte CDR
    encapsulation: int32 sec, uint32 nanosec)."""
    big_endian = data[1] == 0  # encapsulation kind 0x0000 / 0x0001: CDR big / little endian
    sec, nanosec = struct.unpack_from(">iI" if big_endian else "<iI", data, 4)
    return sec + nanosec * 1e-9


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_soak(agents: int = 200, rate_hz: float = 20.0, minutes: float = 10.0, progress: bool = True,
             warmup_s: float = 5.0, composed: bool = False, cycle_budget_s: float = 0.0) -> dict:
    """Run the stack for ``minutes`` under ``agents`` agents at ``rate_hz``; print a table, return the figures.

    ``cycle_budget_s`` > 0 is passed to the planner (a refinement that would end the plan later is skipped);
    plans published without refinement for it are counted.

    Raises RuntimeError when the stack process dies or never answers.
    """
    if agents < 0 or not rate_hz > 0 or not minutes > 0:
        raise ValueError("agents must be >= 0, rate_hz and minutes positive")
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from rap_planner.msg import PredictionArray, RiskAwarePlan, TrackedAgentArray
    from rap_planner.ros.conversions import ego_to_odometry, stamp_to_s, tracked_agents_to_msg

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    log = tempfile.NamedTemporaryFile("w+", prefix="rap_planner_soak_", suffix=".log", delete=False)  # noqa: SIM115
    capacity = min(max(64, agents + agents // 4), 1024)  # tracks that left linger max_track_age_s
    overrides = {"predictor": {"max_agents": capacity}, "planner": {"cycle_budget_s": cycle_budget_s}}
    roles = ("stack",) if composed else ("predictor", "planner")
    children = [subprocess.Popen(_child_command(role, overrides), env=env, stdout=log, stderr=subprocess.STDOUT)
                for role in roles]
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("soak_source", context=context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_tracks = node.create_publisher(TrackedAgentArray, topics.TRACKED_AGENTS, qos)
    pub_odom = node.create_publisher(Odometry, topics.EGO_ODOM, qos)
    sent: dict[float, float] = {}  # stamp -> publish time, measured window only
    latencies_ms: list[float] = []
    plan_status = {"ok": 0, "fallback": 0, "unrefined": 0}
    predicted: set[float] = set()

    planned: set[float] = set()

    def on_plan(msg: RiskAwarePlan) -> None:
        # Latency from the tracks the plan's forecasts were made of; a late planner may plan them with newer odometry.
        stamp = round(stamp_to_s(msg.prediction_stamp), 6)
        t_pub = sent.get(stamp)
        if t_pub is not None and stamp not in planned:
            planned.add(stamp)
            latencies_ms.append(1e3 * (time.perf_counter() - t_pub))
            plan_status["ok" if msg.status == RiskAwarePlan.STATUS_OK else "fallback"] += 1
            # the safety layer's in-lane stop is never refined either
            plan_status["unrefined"] += (msg.note == RiskAwarePlan.NOTE_REFINEMENT_SKIPPED_BUDGET
                                         or msg.safety == RiskAwarePlan.SAFETY_IN_LANE_STOP)

    def on_prediction(data: bytes) -> None:
        stamp_s = round(_cdr_stamp_s(data), 6)
        if stamp_s in sent:
            predicted.add(stamp_s)

    node.create_subscription(RiskAwarePlan, topics.PLAN, on_plan, qos)
    node.create_subscription(PredictionArray, topics.PREDICTIONS, on_prediction, qos, raw=True)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def check_children() -> None:
        for child in children:
            if child.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"a stack process exited with {child.returncode}:\n{log.read()[-3000:]}")

    def stack_rss_mb() -> float:
        return sum(rss_mb(child.pid) for child in children)

    duration_s = 60.0 * minutes
    rss_samples: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 90.0
        while pub_tracks.get_subscription_count() == 0 or node.count_publishers(topics.PLAN) == 0:
            check_children()
            if time.monotonic() > deadline:
                raise RuntimeError("the stack process did not come up within 90 s")
            executor.spin_once(timeout_sec=0.05)
        t0 = time.monotonic()
        k = 0
        next_rss = next_progress = t0 + warmup_s
        rss_start = None
        while time.monotonic() - t0 < warmup_s + duration_s:
            stamp_s = T0_S + k / rate_hz
            t_s = stamp_s - T0_S
            msg = tracked_agents_to_msg(highway_traffic(agents, t_s), stamp_s)
            if t_s >= warmup_s:
                sent[round(stamp_s, 6)] = time.perf_counter()
            pub_tracks.publish(msg)
            pub_odom.publish(ego_to_odometry(EgoState(stamp_s, EGO_SPEED_MPS * t_s, 0.0, 0.0, EGO_SPEED_MPS)))
            k += 1
            now = time.monotonic()
            if now >= next_rss:
                check_children()
                rss_samples.append((now - t0 - warmup_s, stack_rss_mb()))
                rss_start = rss_samples[0][1] if rss_start is None else rss_start
                next_rss = now + RSS_EVERY_S
            if progress and now >= next_progress + PROGRESS_EVERY_S:
                next_progress = now
                recent = latencies_ms[-int(PROGRESS_EVERY_S * rate_hz):]
                print(f"  {now - t0 - warmup_s:6.0f} s: sent {len(sent):6d}  plans {len(latencies_ms):6d}  "
                      f"p50 {_percentile(recent, 50):6.1f} ms  p95 {_percentile(recent, 95):6.1f} ms  "
                      f"RSS {rss_samples[-1][1]:6.1f} MB", flush=True)
            next_t = t0 + k / rate_hz
            while time.monotonic() < next_t:
                executor.spin_once(timeout_sec=max(0.0, next_t - time.monotonic()))
        elapsed_s = time.monotonic() - t0 - warmup_s
        end = time.monotonic() + DRAIN_S
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        check_children()
        rss_end = stack_rss_mb()
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        for child in children:
            _stop(child)
        log.close()
        os.unlink(log.name)
    if not latencies_ms:
        raise RuntimeError("no plans from the stack process")
    rss_start = rss_start if rss_start is not None else rss_end
    result = {
        "agents": agents, "rate_hz": rate_hz, "minutes": minutes, "composed": composed,
        "cycle_budget_s": cycle_budget_s, "unrefined_plans": plan_status["unrefined"],
        "p50_ms": _percentile(latencies_ms, 50), "p95_ms": _percentile(latencies_ms, 95),
        "p99_ms": _percentile(latencies_ms, 99), "max_ms": max(latencies_ms),
        "sent": len(sent), "plans": len(latencies_ms), "dropped": len(sent) - len(latencies_ms),
        "predictions": len(predicted), "predictions_dropped": len(sent) - len(predicted),
        "ok_plans": plan_status["ok"], "fallback_plans": plan_status["fallback"],
        "achieved_rate_hz": len(sent) / elapsed_s if elapsed_s > 0 else float("nan"),
        "rss_start_mb": rss_start, "rss_end_mb": rss_end, "rss_growth_mb": rss_end - rss_start,
        "rss_max_mb": max([rss_end, *(r for _, r in rss_samples)]),
    }
    _print_table(result)
    return result


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _print_table(r: dict) -> None:
    layout = "predictor + planner composed in one process" if r["composed"] else \
        "predictor and planner in their own processes"
    print(f"soak: {r['agents']} agents at {r['rate_hz']:g} Hz for {r['minutes']:g} min ({layout}, lock-step)")
    rows = [
        ("tracks sent", f"{r['sent']}  ({r['achieved_rate_hz']:.2f} Hz achieved)"),
        ("plans received", f"{r['plans']}  ({r['ok_plans']} ok, {r['fallback_plans']} fallback"
                           + (f", {r['unrefined_plans']} unrefined for the {1e3 * r['cycle_budget_s']:g} ms cycle "
                              "budget)" if r["cycle_budget_s"] else ")")),
        ("dropped (no plan)", f"{r['dropped']}  ({100.0 * r['dropped'] / max(r['sent'], 1):.2f} %)"),
        ("predictions received", f"{r['predictions']}  ({r['predictions_dropped']} dropped)"),
        ("plan latency p50 / p95 / p99", f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {r['p99_ms']:.1f} ms  "
                                         f"(max {r['max_ms']:.1f} ms)"),
        ("stack RSS start -> end", f"{r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} MB  "
                                   f"(growth {r['rss_growth_mb']:+.1f} MB, max {r['rss_max_mb']:.1f} MB)"),
    ]
    for name, value in rows:
        print(f"  {name:<30} {value}")
