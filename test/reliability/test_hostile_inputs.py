"""Hostile input over real DDS: the live predictor and planner must neither die nor stop answering.

Both nodes run in this process on the test's context, spun by the same executor as the source
node, so a callback that raises fails the test with its traceback. The nodes' own catch-alls count
what they catch as "exception" on /diagnostics, and the tests require that count to stay 0.
Messages travel through Fast DDS (rclpy has no intra-process shortcut), so deserialisation is real.

Outcome checked: no exception escapes a callback, the planner keeps publishing (fallback plans
while inputs are bad), /diagnostics counts the problems by kind, and good input afterwards gives
ok plans again.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nav_msgs.msg import Odometry, Path
from rclpy.parameter import Parameter

from rap_planner.msg import PredictionArray, TrackedAgentArray
from rap_planner.ros.conversions import s_to_stamp, stamp_to_s
from rap_planner.ros.planner_node import PlannerNode
from rap_planner.ros.predictor_node import PredictorNode

from . import corpus
from .harness import HIGHWAY_PLANNER_PARAMS, RELIABLE, TOPICS, Harness, straight_path

PLAN_PERIOD_S = 0.1  # planner rate_hz 10 (default)


def make_stack(context, lockstep: bool):
    pred = PredictorNode(context=context, parameter_overrides=[
        Parameter("trigger_on_tracks", value=lockstep), Parameter("publish_markers", value=True)])
    plan = PlannerNode(context=context, parameter_overrides=[
        Parameter("trigger_on_predictions", value=lockstep),
        *[Parameter(k, value=v) for k, v in HIGHWAY_PLANNER_PARAMS.items()]])
    return pred, plan


def _running_stack(context, lockstep: bool):
    pred, plan = make_stack(context, lockstep)
    harness = Harness(context, [pred, plan])
    harness.send("reference", straight_path())
    harness.wait_for_subscribers()
    yield harness, pred, plan
    harness.close()


@pytest.fixture
def timer_stack(rclpy_context):
    yield from _running_stack(rclpy_context, lockstep=False)


@pytest.fixture
def lockstep_stack(rclpy_context):
    yield from _running_stack(rclpy_context, lockstep=True)


def warm_up(harness: Harness, timeout_s: float = 30.0) -> None:
    """Good input at 10 Hz until an ok plan arrives (the first model run is slow)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        t = time.monotonic()
        harness.send_good(spin_s=0.1)
        if any(p.ok for p in harness.plans_since(t - 0.5)):
            return
    raise AssertionError("no ok plan from good input during warm-up")


def assert_recovers(harness: Harness, lockstep: bool, timeout_s: float = 20.0) -> None:
    """Good input again (and the good reference path): ok plans must come back."""
    harness.send("reference", straight_path())
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        harness.send_good(spin_s=0.1)
        if sum(p.ok for p in harness.plans_since(start + (0.0 if lockstep else 1.0))) >= 3:
            return
    reasons = Counter(p.fallback.name for p in harness.plans_since(start) if p.fallback is not None)
    raise AssertionError(f"no ok plans within {timeout_s} s of good input after the hostile corpus: {reasons}")


def restamped(msg, base_now_s: float, now_s: float):
    """Shift a stamp given relative to ``base_now_s`` (within two hours of it) to the same offset from ``now_s``,
    so a message built before the run is as fresh (or as old) when it is sent; absurd absolute stamps stay."""
    header = getattr(msg, "header", None)
    if header is not None and abs(stamp_to_s(header.stamp) - base_now_s) <= 7200.0:
        header.stamp = s_to_stamp(stamp_to_s(header.stamp) + now_s - base_now_s)
    return msg


def report(name: str, harness: Harness, count: int) -> None:
    print(f"\n{name}: {count} hostile messages sent; predictor problems {dict(harness.problem_counts('predictor'))}; "
          f"planner problems {dict(harness.problem_counts('planner'))}")
    reasons = Counter(p.fallback.name for p in harness.plans_since(0.0) if p.fallback is not None)
    print(f"  fallback reasons: {dict(reasons)}")


def test_hand_written_corpus_timer_mode(timer_stack):
    """Every hand-written hostile message, interleaved with good 10 Hz input, with the nodes on their timers."""
    harness, pred, plan = timer_stack
    warm_up(harness)
    now = harness.now_s()
    entries = (corpus.hostile_tracks(now) + corpus.hostile_odometry(now) + corpus.hostile_predictions(now)
               + corpus.hostile_paths())
    flood_start = time.monotonic()
    next_good = 0.0
    for key, msg, _label in entries:
        if time.monotonic() >= next_good:
            harness.send_good()
            next_good = time.monotonic() + PLAN_PERIOD_S
        harness.send(key, restamped(msg, now, harness.now_s()), spin_s=0.02)
    harness.send("reference", straight_path())
    harness.spin(1.5)  # one more /diagnostics period
    flood = [t for t, _ in harness.plans if t >= flood_start]
    gaps = [b - a for a, b in zip(flood, flood[1:], strict=False)]
    duration = time.monotonic() - flood_start
    # Loose on purpose (two shared cores): a dead or stuck planner gives no plans at all, not fewer.
    assert len(flood) >= 0.2 * duration / PLAN_PERIOD_S, f"{len(flood)} plans in {duration:.1f} s of hostile input"
    assert max(gaps) < 2.5, f"the planner went quiet for {max(gaps):.2f} s"
    print(f"\n{len(flood)} plans in {duration:.1f} s of hostile input, longest gap {max(gaps):.2f} s")
    assert any(not p.ok for p in harness.plans_since(flood_start)), "hostile input should cause fallback plans"

    pred_counts, plan_counts = harness.problem_counts("predictor"), harness.problem_counts("planner")
    for kind in ("wrong_frame", "bad_agent", "bad_tracks"):
        assert pred_counts[kind] > 0, f"predictor diagnostics miss {kind}: {dict(pred_counts)}"
    for kind in ("wrong_frame", "bad_odometry", "bad_predictions", "bad_reference", "fallback"):
        assert plan_counts[kind] > 0, f"planner diagnostics miss {kind}: {dict(plan_counts)}"
    assert pred_counts["exception"] == 0 and plan_counts["exception"] == 0, \
        f"a callback hit its catch-all: {harness.diagnostic_messages}"
    report("hand-written corpus (timer mode)", harness, len(entries))
    assert_recovers(harness, lockstep=False)


def test_hand_written_corpus_lockstep(lockstep_stack):
    """The same corpus with the nodes triggered by their inputs (lock-step simulation)."""
    harness, pred, plan = lockstep_stack
    warm_up(harness)
    now = harness.now_s()
    entries = (corpus.hostile_tracks(now) + corpus.hostile_odometry(now) + corpus.hostile_predictions(now)
               + corpus.hostile_paths())
    for i, (key, msg, _label) in enumerate(entries):
        if i % 5 == 0:
            harness.send_good()
        harness.send(key, restamped(msg, now, harness.now_s()), spin_s=0.02)
    harness.spin(1.5)
    counts = harness.problem_counts("predictor") + harness.problem_counts("planner")
    assert counts["exception"] == 0, f"a callback hit its catch-all: {harness.diagnostic_messages}"
    report("hand-written corpus (lock-step)", harness, len(entries))
    assert_recovers(harness, lockstep=True)


def test_hypothesis_corpus_lockstep(lockstep_stack):
    """Generated messages on all four inputs, lock-step (each input is processed at once)."""
    harness, pred, plan = lockstep_stack
    warm_up(harness)
    now = harness.now_s()
    sent = Counter()
    message = st.one_of(
        st.tuples(st.just("tracks"), corpus.tracked_agent_arrays(now)),
        st.tuples(st.just("odom"), corpus.odometries(now)),
        st.tuples(st.just("predictions"), corpus.prediction_arrays(now)),
        st.tuples(st.just("reference"), corpus.paths()),
    )

    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(message, st.booleans())
    def fuzz(entry, with_good_input):
        key, msg = entry
        if with_good_input:
            harness.send_good()
        harness.send(key, msg, spin_s=0.01)
        sent[key] += 1

    fuzz()
    harness.spin(1.5)
    assert harness.plans, "no plans at all"
    report("hypothesis corpus (lock-step)", harness, sum(sent.values()))
    print(f"  per topic: {dict(sent)}")
    assert_recovers(harness, lockstep=True)


def test_garbage_bytes_are_dropped_and_the_stack_carries_on(lockstep_stack):
    """Raw payloads that are not valid CDR of the topic's type; what rclpy delivers must be handled."""
    harness, pred, plan = lockstep_stack
    delivered = Counter()
    for key, (topic, msg_type, _) in TOPICS.items():
        harness.node.create_subscription(msg_type, topic, lambda _m, key=key: delivered.update([key]), RELIABLE)
    harness.wait_for_subscribers()
    warm_up(harness)
    now = harness.now_s()
    valid = {"tracks": corpus.tracks([corpus.agent(1)], now), "odom": corpus.odom(now),
             "predictions": corpus.predictions([corpus.prediction_agent(1)], now),
             "reference": straight_path()}
    assert {type(v) for v in valid.values()} == {TrackedAgentArray, Odometry, PredictionArray, Path}
    before = Counter(delivered)
    entries = corpus.garbage_bytes(valid)
    for key, payload, _label in entries:
        harness.send(key, payload, spin_s=0.01)
    harness.spin(1.5)
    got = delivered - before
    report("garbage bytes", harness, len(entries))
    print(f"  delivered to a typed subscriber (the rest dropped by the middleware): {dict(got)} "
          f"of {dict(Counter(k for k, _, _ in entries))}")
    assert sum(got.values()) < len(entries), "undecodable payloads should be dropped, not delivered"
    assert_recovers(harness, lockstep=True)
