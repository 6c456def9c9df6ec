"""Offline evaluation of a synthetic bag whose right answers are known by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from rap_planner import topics
from rap_planner.bagtools.evaluate import evaluate_bag, observed_positions
from rap_planner.ros.bag_recorder import rap_planner_typestore

DT_S, STEPS, SIGMA_M = 0.5, 4, 0.5
TRACK_PERIOD_S, END_S = 0.2, 4.0  # tracks every 0.2 s: forecast times (every 0.5 s) need interpolation
AGENT3_LAST_S = 1.6  # agent 3 vanishes after this
WRONG_STAMP_S = 1.0  # agent 2's forecast at this stamp is deliberately wrong
PLAN_TIMES_MS = (10.0, 20.0, 30.0, 40.0)
STALE = "stale predictions (0.8 s old)"


def _truth(agent_id: int, t_s: np.ndarray) -> np.ndarray:
    """Constant-velocity motion: agent 1 at 20 m/s in lane 0, 2 at 10 m/s in lane 1, 3 at 15 m/s in lane -1."""
    x0, v, y = {1: (10.0, 20.0, 0.0), 2: (0.0, 10.0, 3.5), 3: (5.0, 15.0, -3.5)}[agent_id]
    return np.stack([x0 + v * t_s, np.full_like(t_s, y)], -1)


def _modes(agent_id: int, stamp_s: float) -> tuple[list[float], list[np.ndarray]]:
    """Mode weights and (T, 2) means; the most likely mode is exact except for the wrong forecast."""
    future = _truth(agent_id, stamp_s + DT_S * np.arange(1, STEPS + 1))
    if agent_id == 2 and math.isclose(stamp_s, WRONG_STAMP_S):
        standing = np.repeat(_truth(2, np.array([stamp_s])), STEPS, 0)  # errors 5, 10, 15, 20 m
        return [0.6, 0.4], [standing, future + [3.0, 0.0]]  # best mode 3 m off at every step
    weight, lane_change = {1: (0.7, 3.5), 2: (0.6, -3.5), 3: (0.8, 3.5)}[agent_id]
    return [weight, 1.0 - weight], [future, future + [0.0, lane_change]]


class _BagBuilder:
    def __init__(self, path: Path):
        self.store = rap_planner_typestore()
        self.types = self.store.types
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.connections = {}

    def write(self, topic: str, msg, stamp_s: float) -> None:
        msgtype = msg.__msgtype__
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store)
        # bag time = wall clock of a recording, far from the header (sim) time the evaluation must use
        self.writer.write(self.connections[topic], 1_700_000_000_000_000_000 + int(round(stamp_s * 1e9)),
                          self.store.serialize_cdr(msg, msgtype))

    def header(self, stamp_s: float):
        ns = int(round(stamp_s * 1e9))
        stamp = self.types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
        return self.types["std_msgs/msg/Header"](stamp=stamp, frame_id="map")

    def tracks(self, stamp_s: float, agent_ids: list[int]):
        agent = self.types["rap_planner/msg/TrackedAgent"]
        agents = [agent(id=i, classification=1, x=float(p[0]), y=float(p[1]), yaw=0.0, vx=0.0, vy=0.0,
                        has_acceleration=False, ax=0.0, ay=0.0, length=4.5, width=1.8, covariance=np.zeros(25))
                  for i in agent_ids for p in _truth(i, np.array([stamp_s]))]
        return self.types["rap_planner/msg/TrackedAgentArray"](header=self.header(stamp_s), agents=agents)

    def prediction(self, stamp_s: float, agent_ids: list[int]):
        f32 = np.float32
        agents = []
        for i in agent_ids:
            weights, means = _modes(i, stamp_s)
            mean = np.concatenate(means)  # index k * STEPS + t
            var = np.full(len(mean), SIGMA_M**2, f32)
            agents.append(self.types["rap_planner/msg/AgentPrediction"](
                id=i, length=4.5, width=1.8, mode_weights=np.array(weights, f32), mean_x=mean[:, 0].astype(f32),
                mean_y=mean[:, 1].astype(f32), cov_xx=var, cov_xy=np.zeros(len(mean), f32), cov_yy=var,
                sample_x=np.zeros(0, f32), sample_y=np.zeros(0, f32)))
        if stamp_s == 0.0:  # one agent whose arrays are too short: ignored and counted
            agents.append(self.types["rap_planner/msg/AgentPrediction"](
                id=99, length=4.5, width=1.8, mode_weights=np.array([1.0], f32), mean_x=np.zeros(1, f32),
                mean_y=np.zeros(1, f32), cov_xx=np.ones(1, f32), cov_xy=np.zeros(1, f32), cov_yy=np.ones(1, f32),
                sample_x=np.zeros(0, f32), sample_y=np.zeros(0, f32)))
        return self.types["rap_planner/msg/PredictionArray"](
            header=self.header(stamp_s), dt=DT_S, num_steps=STEPS, num_modes=2, agents=agents, num_samples=0,
            sample_weights=np.zeros(0, np.float32), sample_risk_level=0.0)

    def plan(self, stamp_s: float, planning_time_ms: float, fallback: bool, code: int | None = None):
        """An ok plan, or a fallback with ``code`` (default: the message's stale-predictions constant)."""
        plan_type = self.types["rap_planner/msg/RiskAwarePlan"]
        if code is None:
            code = plan_type.FALLBACK_STALE_PREDICTIONS if fallback else plan_type.FALLBACK_UNSPECIFIED
        point = self.types["rap_planner/msg/TrajectoryPoint"](
            time_from_start=self.types["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), x=0.0, y=0.0, yaw=0.0,
            velocity=10.0, acceleration=0.0)
        return plan_type(
            header=self.header(stamp_s), points=[point], risk_measure="cvar", risk_level=0.9, risk=1.0 + stamp_s,
            expected_cost=0.5 + stamp_s, value_at_risk=1.0,
            status=plan_type.STATUS_FALLBACK if fallback else plan_type.STATUS_OK, fallback_reason=code,
            note=plan_type.NOTE_NONE, safety=plan_type.SAFETY_NONE, status_reason=STALE if fallback else "",
            planning_time=planning_time_ms * 1e-3, num_candidates=10, num_scenarios=20, num_agents=2,
            prediction_stamp=self.header(stamp_s).stamp)

    def close(self) -> None:
        self.writer.close()


def _write_scenario(path: Path, with_plans: bool = True) -> Path:
    bag = _BagBuilder(path)
    for k in range(int(round(END_S / TRACK_PERIOD_S)) + 1):
        t = k * TRACK_PERIOD_S
        bag.write(topics.TRACKED_AGENTS, bag.tracks(t, [1, 2] + ([3] if t <= AGENT3_LAST_S + 1e-9 else [])), t)
    for k in range(int(round(END_S / DT_S)) + 1):
        s = k * DT_S
        bag.write(topics.PREDICTIONS, bag.prediction(s, [1, 2] + ([3] if s <= AGENT3_LAST_S else [])), s + 0.05)
    if with_plans:
        for k, ms in enumerate(PLAN_TIMES_MS):
            bag.write(topics.PLAN, bag.plan(float(k), ms, fallback=k == 2), k + 0.1)
    bag.close()
    return path


@pytest.fixture(scope="module")
def scenario_bag(tmp_path_factory) -> Path:
    return _write_scenario(tmp_path_factory.mktemp("eval") / "scenario_bag")


def _nll_per_step(weight: float, offset_sigmas: float = 0.0) -> float:
    """Per-step NLL of a trajectory that one isotropic mode of ``weight`` misses by a constant offset."""
    log_n0 = -math.log(2 * math.pi) - 2 * math.log(SIGMA_M)
    return -(math.log(weight) + STEPS * (log_n0 - 0.5 * offset_sigmas**2)) / STEPS


def test_metrics_match_hand_computed_values(scenario_bag, tmp_path):
    result = evaluate_bag(scenario_bag, tmp_path / "out")
    p = result["prediction"]
    # 9 prediction cycles x agents 1, 2 plus agent 3 in the first 4
    assert p["forecasts_total"] == 22 and p["forecasts_malformed"] == 1
    assert (p["dt_s"], p["num_steps"], p["num_modes"]) == (DT_S, STEPS, 2)
    # whole horizon seen: stamps 0-2 s for agents 1, 2; cut short: stamps 2.5-3.5 s and agent 3 at 0-1 s;
    # nothing left to score: stamp 4 s (end of bag) and agent 3 at 1.5 s (gone after 1.6 s)
    assert (p["forecasts_full_horizon"], p["forecasts_partial"], p["forecasts_skipped"]) == (10, 9, 3)
    # 9 exact forecasts and one whose best mode is 3 m off at every step
    assert p["minADE_m"] == pytest.approx(0.3, abs=1e-4)
    assert p["minFDE_m"] == pytest.approx(0.3, abs=1e-4)
    assert p["miss_rate"] == pytest.approx(0.1)
    expected_nll = (5 * _nll_per_step(0.7) + 4 * _nll_per_step(0.6) + _nll_per_step(0.4, 3.0 / SIGMA_M)) / 10
    assert p["nll"] == pytest.approx(expected_nll, abs=1e-3)
    # every observed step counts: 19, 16, 13, 10 forecasts; only the wrong one's most likely mode errs
    assert p["count_per_step"] == [19, 16, 13, 10]
    expected_rmse = [math.sqrt(e**2 / n) for e, n in zip((5, 10, 15, 20), (19, 16, 13, 10), strict=True)]
    assert p["rmse_per_step_m"] == pytest.approx(expected_rmse, abs=1e-4)
    assert p["rmse_per_s_m"] == pytest.approx([2.5, math.sqrt(40.0)], abs=1e-4)
    assert p["min_error_per_step_m"] == pytest.approx([3 / 19, 3 / 16, 3 / 13, 3 / 10], abs=1e-4)
    assert p["horizon_s"] == [0.5, 1.0, 1.5, 2.0]


def test_plan_statistics(scenario_bag, tmp_path):
    q = evaluate_bag(scenario_bag, tmp_path / "out")["plans"]
    assert q["count"] == 4 and q["fallback_count"] == 1 and q["fallback_share"] == pytest.approx(0.25)
    assert q["fallback_reasons"] == {"STALE_PREDICTIONS": 1} and q["fallback_examples"] == {"STALE_PREDICTIONS": STALE}
    assert q["risk_settings"] == {"cvar@0.90": 4}
    assert q["planning_time_ms"]["p50"] == pytest.approx(25.0, rel=1e-5)
    assert q["planning_time_ms"]["p95"] == pytest.approx(38.5, rel=1e-5)
    assert q["risk"] == pytest.approx({"mean": 2.5, "max": 4.0})
    assert q["series"]["t_s"] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert q["series"]["expected_cost"] == pytest.approx([0.5, 1.5, 2.5, 3.5])
    assert q["series"]["fallback"] == [False, False, True, False]


def test_outputs_written_as_strict_json_and_markdown(scenario_bag, tmp_path):
    out = tmp_path / "out"
    result = evaluate_bag(scenario_bag, out)
    for name in ("metrics.md", "metrics.json", "error_vs_horizon.png", "plan_stats.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "error_vs_horizon.png").read_bytes()[:4] == b"\x89PNG"

    def reject(constant: str):
        raise AssertionError(f"metrics.json holds {constant}")

    assert json.loads((out / "metrics.json").read_text(), parse_constant=reject) == result
    text = (out / "metrics.md").read_text()
    assert "| minADE [m] | 0.300 |" in text and f'- STALE_PREDICTIONS: 1 (e.g. "{STALE}")' in text


def test_fallbacks_counted_by_code_unknown_codes_unspecified(tmp_path):
    bag = _BagBuilder(tmp_path / "codes")
    planner_failure = bag.types["rap_planner/msg/RiskAwarePlan"].FALLBACK_PLANNER_FAILURE
    for k, code in enumerate((planner_failure, 200, planner_failure, None)):
        bag.write(topics.PLAN, bag.plan(float(k), 10.0, fallback=code is not None, code=code), float(k))
    bag.close()
    q = evaluate_bag(tmp_path / "codes", tmp_path / "out")["plans"]
    assert q["fallback_count"] == 3 and q["fallback_reasons"] == {"PLANNER_FAILURE": 2, "UNSPECIFIED": 1}


def test_min_history_leaves_out_newcomers(scenario_bag, tmp_path):
    p = evaluate_bag(scenario_bag, tmp_path / "out", min_history_s=1.0)["prediction"]
    assert p["forecasts_short_history"] == 6  # stamps 0 and 0.5 s, three agents each
    assert p["forecasts_full_horizon"] == 6 and p["minADE_m"] == pytest.approx(0.5, abs=1e-4)


def test_bag_without_plans_and_bad_inputs(tmp_path):
    bag = _write_scenario(tmp_path / "no_plans", with_plans=False)
    result = evaluate_bag(bag, tmp_path / "out")
    assert result["plans"]["count"] == 0 and result["plans"]["fallback_share"] is None
    assert (tmp_path / "out" / "plan_stats.png").exists()
    assert "No plans" in (tmp_path / "out" / "metrics.md").read_text()
    with pytest.raises(FileNotFoundError):
        evaluate_bag(tmp_path / "missing", tmp_path / "out")
    empty = _BagBuilder(tmp_path / "tracks_only")
    empty.write(topics.TRACKED_AGENTS, empty.tracks(0.0, [1]), 0.0)
    empty.close()
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_bag(tmp_path / "tracks_only", tmp_path / "out")


def test_observed_positions_interpolate_only_across_short_gaps():
    track = np.array([[0.0, 0.0, 0.0], [0.2, 2.0, 1.0], [1.0, 10.0, 1.0]])
    got = observed_positions(track, np.array([-0.1, 0.0, 0.1, 0.6, 1.0, 1.2]), max_gap_s=0.5)
    np.testing.assert_allclose(got[[1, 2, 4]], [[0.0, 0.0], [1.0, 0.5], [10.0, 1.0]])
    assert np.isnan(got[[0, 3, 5]]).all()  # before the first sighting, across the 0.8 s gap, after the last
    assert np.isnan(observed_positions(None, np.array([0.0]))).all()
