"""Planner latency benchmark: p50/p95 of full plans on a busy highway, against a naive baseline.

Plans run through the nodes' planning stage (``PlanningPipeline``). The baseline is the same stage with
the (C, S) cost matrix computed one candidate at a time in a Python loop (same maths,
``CostModel.evaluate_naive``), measured in the same run on the same scenes.
Plans cycle through a few differently seeded scenes, so no cycle re-solves the previous problem.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time

import numpy as np

from rap_planner.core.candidates import Candidates, plan_candidates
from rap_planner.core.costs import AgentTracks, CostModel
from rap_planner.core.pipeline import PlanningPipeline
from rap_planner.core.planner import PlannerConfig
from rap_planner.core.reference_path import ReferencePath
from rap_planner.core.scenes import highway_scene
from rap_planner.core.types import EgoState, ForecastSet, Plan
from rap_planner.runtime_tuning import tune_process

_MAX_TARGET_SPEEDS = 64
_NUM_SCENES = 5


def naive_costs(model: CostModel, cands: Candidates, tracks: AgentTracks) -> np.ndarray:
    """The baseline cost evaluator: one candidate at a time."""
    return model.evaluate_naive(cands, tracks)


def config_with_candidates(base: PlannerConfig, ego: EgoState, reference: ReferencePath, count: int) -> PlannerConfig:
    """``base`` with the fewest target speeds that give at least ``count`` feasible candidates."""
    for speeds in range(base.num_target_speeds, _MAX_TARGET_SPEEDS + 1):
        config = dataclasses.replace(base, num_target_speeds=speeds)
        target = min(reference.speed_limit_mps, config.limits.max_speed_mps)
        if plan_candidates(ego, reference, config.candidate_config(target)).num >= count:
            return config
    raise ValueError(f"cannot reach {count} candidates with up to {_MAX_TARGET_SPEEDS} target speeds")


def _plan(pipeline: PlanningPipeline, scene: tuple[EgoState, ForecastSet, ReferencePath]) -> Plan:
    """One cycle of the nodes' planning stage on ``scene``."""
    ego, forecasts, pipeline.reference = scene
    return pipeline.step(ego, forecasts, forecasts.stamp_s)


def _time_plans(pipeline: PlanningPipeline, scenes: list[tuple[EgoState, ForecastSet, ReferencePath]], repeats: int,
                warmup: int) -> dict[str, np.ndarray]:
    for k in range(warmup):
        _plan(pipeline, scenes[k % len(scenes)])
    stages: dict[str, list[float]] = {}
    for k in range(repeats):
        cpu_start = time.process_time()
        plan = _plan(pipeline, scenes[k % len(scenes)])
        stages.setdefault("cpu", []).append((time.process_time() - cpu_start) * 1e3)
        if not plan.ok:
            raise RuntimeError(f"benchmark plan failed: {plan.reason}")
        for name, seconds in pipeline.planner.last_timings_s.items():
            stages.setdefault(name, []).append(seconds * 1e3)
    return {name: np.asarray(values) for name, values in stages.items()}


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def run_planner_bench(
    agents: int = 32,
    scenarios: int = 64,
    candidates: int = 512,
    horizon_s: float = 5.0,
    dt_s: float = 0.2,
    repeats: int = 100,
    naive_repeats: int = 3,
    warmup: int = 5,
    seed: int = 0,
    show: bool = True,
) -> dict:
    """Time ``repeats`` full plans (and ``naive_repeats`` baseline plans); print a table if ``show``.

    Returns p50_ms / p95_ms per plan, refine_p95_ms for the refinement stage alone, the sizes, the
    baseline's naive_p50_ms and speedup = naive_p50_ms / p50_ms, plus per-stage p50s.
    """
    tune_process()
    scenes: list[tuple[EgoState, ForecastSet, ReferencePath]] = [
        highway_scene(agents, seed + k, horizon_s=horizon_s, dt_s=dt_s) for k in range(_NUM_SCENES)
    ]
    ego, forecasts, reference = scenes[0]
    base = PlannerConfig(num_scenarios=scenarios, horizon_s=horizon_s, dt_s=dt_s, seed=seed)
    config = config_with_candidates(base, ego, reference, candidates)
    plan = _plan(PlanningPipeline(config, reference), scenes[0])
    fast = _time_plans(PlanningPipeline(config, reference), scenes, repeats, warmup)
    baseline = PlanningPipeline(config, reference)
    baseline.planner.cost_evaluator = naive_costs
    slow = _time_plans(baseline, scenes, naive_repeats, 1)
    p50, p95 = np.percentile(fast["total"], [50, 95])
    naive_p50 = float(np.percentile(slow["total"], 50))
    result = {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "refine_p95_ms": float(np.percentile(fast["refine"], 95)),
        "candidates": plan.num_candidates,
        "scenarios": plan.num_scenarios,
        "agents": agents,
        "naive_p50_ms": naive_p50,
        "speedup": naive_p50 / float(p50),
        "cost_p50_ms": float(np.percentile(fast["costs"], 50)),
        "naive_cost_p50_ms": float(np.percentile(slow["costs"], 50)),
        "cpu_p50_ms": float(np.percentile(fast["cpu"], 50)),
        "stages_p50_ms": {k: float(np.percentile(v, 50)) for k, v in fast.items() if k not in ("total", "cpu")},
        "repeats": repeats,
        "naive_repeats": naive_repeats,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "machine": platform.processor() or platform.machine(),
    }
    if show:
        print(_report(result))
    return result


def _report(r: dict) -> str:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_p50_ms"].items())
    rows = [
        ("scene", f"{r['agents']} agents, {r['scenarios']} scenarios, {r['candidates']} candidates"),
        ("plan p50 / p95", f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms  ({r['repeats']} plans, wall clock)"),
        ("plan CPU p50", f"{r['cpu_p50_ms']:.1f} ms  (both threads; wall time on a busy machine runs above it)"),
        ("refinement p95", f"{r['refine_p95_ms']:.1f} ms"),
        ("stages p50", f"{stages} ms"),
        ("naive plan p50", f"{r['naive_p50_ms']:.0f} ms  ({r['naive_repeats']} plans, per-candidate loop)"),
        ("speedup", f"{r['speedup']:.1f}x per plan; costs {r['naive_cost_p50_ms'] / r['cost_p50_ms']:.0f}x"),
        ("machine", f"{r['cpu_count']} CPUs, load average {r['load_average']:.2f} at the end"),
    ]
    return "planner benchmark\n" + _table(rows)
