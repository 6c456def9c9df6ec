"""Closed-loop judging against real SUMO: fault and lane-centre bookkeeping, and the baselines
(SUMO's driver, IDM + MOBIL) through the evaluation entry point."""

from __future__ import annotations

import csv
import json
import math

import pytest

from rap_planner.sim.episode import EpisodeRecorder
from rap_planner.sim.evaluate import evaluate_closed_loop
from rap_planner.sim.world import SumoWorld

OFFSET_M = 1.0  # between the ego's lane centre and the left lane's (3.5 m away): off every lane centre


def test_ego_driven_into_its_leader_between_lanes_is_at_fault_and_off_lane_all_along():
    with SumoWorld("highway_cutin", seed=0) as world:
        recorder = EpisodeRecorder(world, keep_frames=False)
        reference = world.reference_path()
        s_m, _ = reference.project(world.ego().x_m, world.ego().y_m)
        while not world.done():
            s_m += 3.5  # 35 m/s, faster than any car ahead
            x, y, heading = reference.point_at(s_m)
            world.apply_ego_state(x - math.sin(heading) * OFFSET_M, y + math.cos(heading) * OFFSET_M, heading, 35.0)
            world.step()
            recorder.record(None)
        m = recorder.metrics
    assert m.collision
    assert m.at_fault
    assert m.collision_side == "front"
    assert m.off_lane_s == pytest.approx(m.duration_s)  # every recorded step


def test_sumo_and_idm_baselines_run_through_the_evaluation(tmp_path):
    result = evaluate_closed_loop("highway_cutin", [3], [0.9], tmp_path, planners=("sumo", "idm"), workers=1,
                                  until_s=4.0)
    assert list(result["per_planner"]) == ["sumo", "idm"]
    assert result["per_planner"]["sumo"]["off_lane_s"] == 0.0  # SUMO's ego keeps its lane here
    for row in result["per_planner"].values():
        assert row["episodes"] == 1
        assert row["collision_rate"] == 0.0
        assert row["at_fault_collision_rate"] == 0.0
        assert 60.0 < row["progress_m"] < 140.0  # 4 s near 25 m/s
        assert 0.0 <= row["off_lane_s"] < 1.0  # a lane change at most begins in 4 s
        assert row["goal_rate"] == 0.0
        assert row["plan_p50_ms"] is None  # no planner: no plan latency
    with open(tmp_path / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["planner"] for r in rows] == ["sumo", "idm"]
    assert all(r["risk_level"] == "" for r in rows)
    json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "outcome_vs_risk.png").stat().st_size > 10_000
