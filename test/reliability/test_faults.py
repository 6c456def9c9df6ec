"""Faults: a predictor killed mid-run and restarted, invalid parameters, a failing or slow solver.

The predictor and planner run as separate processes (`python -m rap_planner.ros.entry ...`, as
`ros2 run` starts them) where a process dying is the fault; in-process where a fault is injected by
monkeypatching. Stamps are wall-clock ROS time on both sides (same host, same clock), so a plan's
stamp can be compared with the moment this process killed the predictor.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

import cvxpy as cp
import pytest
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient

from rap_planner.core.planner import PlannerConfig, RiskAwarePlanner
from rap_planner.core.refine import CvarRefiner
from rap_planner.core.scenes import didactic_scene
from rap_planner.core.types import FallbackReason, PlanNote
from rap_planner.ros.param_client import get_parameter, set_parameter
from rap_planner.ros.planner_node import PlannerNode
from rap_planner.ros.predictor_node import PredictorNode

from .harness import HIGHWAY_PLANNER_PARAMS, Harness, straight_path

PREDICTION_TIMEOUT_S = 0.5
PLAN_PERIOD_S = 0.1
SCHEDULING_SLACK_S = 0.4  # two shared cores: a timer callback can run this late


def ros_value(value) -> str:
    return "[" + ", ".join(repr(float(v)) for v in value) + "]" if isinstance(value, list) else str(value)


def start_node(executable: str, params: dict, log_dir) -> subprocess.Popen:
    args = [a for k, v in params.items() for a in ("-p", f"{k}:={ros_value(v)}")]
    log = open(log_dir / f"{executable}_{time.monotonic_ns()}.log", "w")  # noqa: SIM115 (closed by stop())
    proc = subprocess.Popen([sys.executable, "-m", "rap_planner.ros.entry", executable, "--ros-args", *args],
                            stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log.close()


PLANNER_PARAMS = {**HIGHWAY_PLANNER_PARAMS, "prediction_timeout_s": PREDICTION_TIMEOUT_S, "rate_hz": 10.0}


def feed_until(harness: Harness, condition, timeout_s: float, what: str) -> None:
    """Good input at 10 Hz until ``condition()``."""
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        harness.send_good(spin_s=0.1)


def test_predictor_killed_and_restarted(rclpy_context, tmp_path):
    planner = start_node("planner_node", PLANNER_PARAMS, tmp_path)
    predictor = start_node("predictor_node", {}, tmp_path)
    harness = Harness(rclpy_context)
    try:
        harness.send("reference", straight_path())
        harness.wait_for_subscribers(timeout_s=60.0)
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.ok for p in harness.plans_since(t)) >= 10, 90.0, "ok plans")

        predictor.kill()  # SIGKILL: no goodbye, no last message
        predictor.wait()
        predictor.log.close()
        t_kill_s = harness.now_s()
        feed_until(harness, lambda: harness.now_s() > t_kill_s + 3.0, 10.0, "3 s without a predictor")
        after = [p for p in harness.plans_since(0.0) if p.stamp_s > t_kill_s]
        late_ok = [p.stamp_s - t_kill_s for p in after if p.ok]
        assert not any(dt > PREDICTION_TIMEOUT_S + 1e-3 for dt in late_ok), \
            f"ok plans {late_ok} s after the kill: forecasts older than prediction_timeout_s were used"
        stale = [p for p in after if p.fallback is FallbackReason.STALE_PREDICTIONS]
        assert stale, f"no 'stale predictions' fallback after the kill: {[p.fallback for p in after]}"
        detected_s = stale[0].stamp_s - t_kill_s
        assert detected_s <= PREDICTION_TIMEOUT_S + PLAN_PERIOD_S + SCHEDULING_SLACK_S, detected_s
        assert all(not p.ok for p in after if p.stamp_s > t_kill_s + PREDICTION_TIMEOUT_S + 1e-3)
        assert len(after) >= 0.5 * 3.0 / PLAN_PERIOD_S, "the planner must keep publishing (fallback) plans"

        predictor = start_node("predictor_node", {}, tmp_path)
        t_restart = time.monotonic()
        feed_until(harness, lambda: sum(p.ok for p in harness.plans_since(t_restart)) >= 5, 90.0,
                   "ok plans after the restart")
        recovered_s = time.monotonic() - t_restart
        assert planner.poll() is None and predictor.poll() is None, "a node died"
        print(f"\nfallback 'stale predictions' {detected_s:.2f} s after the kill (timeout {PREDICTION_TIMEOUT_S} s); "
              f"ok plans {recovered_s:.1f} s after the restart (process start included)")
    finally:
        harness.close()
        stop(predictor)
        stop(planner)


PLANNER_REJECTED = [
    ("risk_level", 1.5, "risk_level"),
    ("risk_level", -0.1, "risk_level"),
    ("risk_level", math.nan, "risk_level"),
    ("risk_level", math.inf, "risk_level"),
    ("risk_measure", "banana", "one of"),
    ("num_scenarios", 0, "num_scenarios"),
    ("rate_hz", 0.0, "rate_hz"),
    ("rate_hz", 0, "type"),  # an integer for a double: rclpy refuses the type change
    ("prediction_timeout_s", -1.0, "prediction_timeout_s"),
    ("horizon_s", 1.1, "horizon_s"),  # not a multiple of the 0.2 s step
    ("w_collision", -5.0, "w_collision"),
    ("lane_offsets_m", [], "type"),  # [] travels as an empty byte array: a type change
    ("lane_offsets_m", [1e300], "drivable area"),
    ("reference_x_m", [0.0, 1e300], "reference path"),  # used to raise OverflowError in the parameter callback
    ("reference_x_m", [0.0, 10.0, 20.0], "shape"),  # x and y of different lengths
]
PREDICTOR_REJECTED = [
    ("rate_hz", 0.0, "rate_hz"),
    ("max_agents", 0, "max_agents"),
    ("max_track_age_s", math.nan, "max_track_age_s"),
    ("model_path", "/tmp/evil.safetensors", "read-only"),
]


def test_invalid_parameters_are_rejected_with_a_reason_and_the_old_value_kept(rclpy_context, tmp_path):
    planner = start_node("planner_node", PLANNER_PARAMS, tmp_path)
    predictor = start_node("predictor_node", {}, tmp_path)
    harness = Harness(rclpy_context)
    try:
        harness.send("reference", straight_path())
        harness.wait_for_subscribers(timeout_s=60.0)
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.ok for p in harness.plans_since(t)) >= 3, 90.0, "ok plans")
        ok, reason = set_parameter("/planner", "risk_level", "1.5", timeout_s=20.0)  # as `rap-planner param set`
        assert not ok and "risk_level" in reason
        for node, cases in (("/planner", PLANNER_REJECTED), ("/predictor", PREDICTOR_REJECTED)):
            client = AsyncParameterClient(harness.node, node)  # the client the CLI uses, on this test's node
            assert client.wait_for_services(timeout_sec=20.0)

            def call(future):
                harness.executor.spin_until_future_complete(future, timeout_sec=20.0)
                assert future.done(), "parameter service call timed out"
                return future.result()

            for name, value, why in cases:
                old = parameter_value_to_python(call(client.get_parameters([name])).values[0])
                result = call(client.set_parameters([Parameter(name, value=value)])).results[0]
                assert not result.successful, f"{node} accepted {name}={value!r}"
                assert why.lower() in result.reason.lower(), f"{node} {name}={value!r}: reason {result.reason!r}"
                now = parameter_value_to_python(call(client.get_parameters([name])).values[0])
                assert now == old, f"{node} {name} changed to {now!r} despite the rejection"
        assert get_parameter("/planner", "risk_level", timeout_s=20.0) == pytest.approx(0.9)
        ok, reason = set_parameter("/planner", "risk_level", 0.5, timeout_s=20.0)  # a valid change still lands
        assert ok, reason
        t = time.monotonic()
        feed_until(harness, lambda: any(p.ok and abs(p.risk_level - 0.5) < 1e-6 for p in harness.plans_since(t)),
                   30.0, "ok plans at the new risk level")
        assert planner.poll() is None and predictor.poll() is None, "a node died"
    finally:
        harness.close()
        stop(predictor)
        stop(planner)


# --- solver failure and timeout ----------------------------------------------------------------------

def test_refine_time_limit_in_the_core_keeps_the_unrefined_plan():
    ego, forecasts, reference = didactic_scene()
    planner = RiskAwarePlanner(PlannerConfig(refine_time_limit_s=1e-9))
    plan = planner.plan(ego, forecasts, reference, forecasts.stamp_s)
    assert plan.ok and plan.note is PlanNote.REFINEMENT_SOLVER_FAILURE
    assert plan.states.shape == (planner.config.num_steps + 1, 5) and math.isfinite(plan.risk)


@pytest.mark.parametrize("fault", ["solver_error", "exception", "slow"])
def test_solver_faults_in_the_core_still_give_a_plan(monkeypatch, fault):
    ego, forecasts, reference = didactic_scene()
    planner = RiskAwarePlanner(PlannerConfig())

    def broken_solve(self, *args, **kwargs):
        if fault == "solver_error":
            raise cp.error.SolverError("injected solver failure")
        if fault == "exception":
            raise RuntimeError("injected bug in the solver")
        time.sleep(0.3)
        raise cp.error.SolverError("injected timeout")

    monkeypatch.setattr(cp.Problem, "solve", broken_solve)
    plan = planner.plan(ego, forecasts, reference, forecasts.stamp_s)
    assert plan.states.shape == (planner.config.num_steps + 1, 5)
    if fault == "exception":
        assert plan.fallback is FallbackReason.PLANNER_FAILURE and "injected bug" in plan.reason  # detail kept
    else:
        assert plan.ok and plan.note is PlanNote.REFINEMENT_SOLVER_FAILURE  # the sampled candidate


def test_solver_faults_in_the_live_planner_node(rclpy_context, monkeypatch):
    """Through the node: a tiny refine time limit, then a refiner that raises; plans keep coming."""
    pred = PredictorNode(context=rclpy_context)
    plan_node = PlannerNode(context=rclpy_context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in PLANNER_PARAMS.items()])
    harness = Harness(rclpy_context, [pred, plan_node])
    try:
        harness.send("reference", straight_path())
        harness.wait_for_subscribers()
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.ok for p in harness.plans_since(t)) >= 3, 60.0, "ok plans")

        plan_node.pipeline.planner.update_config(refine_time_limit_s=1e-9)  # the core's knob (no ROS parameter)
        t = time.monotonic()
        feed_until(harness,
                   lambda: sum(p.note is PlanNote.REFINEMENT_SOLVER_FAILURE for p in harness.plans_since(t)) >= 3,
                   30.0, "unrefined ok plans with a 1 ns solver time limit")

        def raising_refine(self, *args, **kwargs):
            raise RuntimeError("injected refiner crash")

        monkeypatch.setattr(CvarRefiner, "refine", raising_refine)
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.fallback is FallbackReason.PLANNER_FAILURE and "injected refiner crash"
                                        in p.reason for p in harness.plans_since(t)) >= 3,
                   30.0, "fallback plans naming the refiner crash")
        assert all(not p.ok for p in harness.plans_since(t + 0.5))
        monkeypatch.undo()
        plan_node.pipeline.planner.update_config(refine_time_limit_s=0.02)
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.ok and p.note is None for p in harness.plans_since(t)) >= 3, 30.0,
                   "refined ok plans again")
    finally:
        harness.close()


def test_predictor_model_fault_is_counted_and_the_planner_falls_back(rclpy_context, monkeypatch):
    """The model raising inside the predictor: counted on /diagnostics, planner brakes on stale forecasts."""
    pred = PredictorNode(context=rclpy_context)
    plan_node = PlannerNode(context=rclpy_context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in PLANNER_PARAMS.items()])
    harness = Harness(rclpy_context, [pred, plan_node])
    try:
        harness.send("reference", straight_path())
        harness.wait_for_subscribers()
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.ok for p in harness.plans_since(t)) >= 3, 60.0, "ok plans")

        def broken_predict(*args, **kwargs):
            raise RuntimeError("injected model failure")

        monkeypatch.setattr(pred.pipeline.model, "predict", broken_predict)
        t = time.monotonic()
        feed_until(harness, lambda: any(p.fallback is FallbackReason.STALE_PREDICTIONS for p in harness.plans_since(t)),
                   10.0, "'stale predictions' fallback")
        feed_until(harness, lambda: harness.problem_counts("predictor")["exception"] > 0, 5.0,
                   "the model failure on /diagnostics")
        monkeypatch.undo()
        t = time.monotonic()
        feed_until(harness, lambda: sum(p.ok for p in harness.plans_since(t)) >= 3, 30.0, "ok plans again")
    finally:
        harness.close()
