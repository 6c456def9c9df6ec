"""`rap-planner eval closed-loop`: episodes per (risk level, seed) in lock-step, in parallel processes.

libsumo runs one simulation per process, so each worker process runs its episodes one after another.
"""

from __future__ import annotations

import csv
import json
import math
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rap_planner.config import planner_config, planner_parameters, predictor_parameters
from rap_planner.core.pipeline import PredictionSettings
from rap_planner.core.planner import PlannerConfig
from rap_planner.runtime_tuning import tune_process

EVAL_SOLVER_TIME_LIMIT_S = 1.0
COLUMNS = ("risk_level", "seed", "collision", "goal_reached", "duration_s", "progress_m", "min_distance_m",
           "min_ttc_s", "max_abs_jerk_mps3", "fallback_count", "plan_p50_ms", "plan_p95_ms")


@dataclass(frozen=True)
class EpisodeTask:
    scenario: str
    seed: int
    risk_level: float
    risk_measure: str
    planner: PlannerConfig
    prediction: PredictionSettings
    model_path: str | None
    biased_samples: int = 0


def _run_task(task: EpisodeTask) -> dict:

    from rap_planner.core.predictor.runtime import ForecastModel
    from rap_planner.sim.closed_loop import LoopConfig, run_episode

    model = ForecastModel.load(task.model_path) if task.model_path else ForecastModel.default()
    # lock-step evaluation waits for the solver: outcomes must not depend on how busy the machine is
    config = replace(task.planner, risk_level=task.risk_level, risk_measure=task.risk_measure,
                     refine_time_limit_s=EVAL_SOLVER_TIME_LIMIT_S)
    prediction = replace(task.prediction, biased_samples=task.biased_samples, sample_risk_level=task.risk_level)
    m = run_episode(LoopConfig(scenario=task.scenario, seed=task.seed), config, model, prediction).metrics
    latency = np.asarray(m.plan_latency_ms) if m.plan_latency_ms else np.zeros(1)
    return {"risk_level": task.risk_level, "seed": task.seed, "collision": m.collision,
            "goal_reached": m.goal_reached, "duration_s": m.duration_s, "progress_m": m.progress_m,
            "min_distance_m": m.min_distance_m, "min_ttc_s": m.min_ttc_s, "max_abs_jerk_mps3": m.max_abs_jerk_mps3,
            "fallback_count": m.fallback_count, "plan_p50_ms": float(np.percentile(latency, 50)),
            "plan_p95_ms": float(np.percentile(latency, 95))}


def summarise(rows: list[dict]) -> dict[float, dict]:
    """Per risk level: collision rate, mean progress and the other means; inf (no closing agent) skipped."""
    out: dict[float, dict] = {}
    for level in sorted({r["risk_level"] for r in rows}):
        group = [r for r in rows if r["risk_level"] == level]

        def mean(key: str, group=group) -> float:
            values = [r[key] for r in group if math.isfinite(r[key])]
            return float(np.mean(values)) if values else float("nan")

        out[level] = {"episodes": len(group), "collision_rate": mean("collision"), "goal_rate": mean("goal_reached"),
                      "progress_m": mean("progress_m"), "min_distance_m": mean("min_distance_m"),
                      "min_ttc_s": mean("min_ttc_s"), "max_abs_jerk_mps3": mean("max_abs_jerk_mps3"),
                      "time_to_goal_s": float(np.mean([r["duration_s"] for r in group if r["goal_reached"]]))
                      if any(r["goal_reached"] for r in group) else float("nan"),
                      "fallbacks_per_episode": mean("fallback_count"), "plan_p50_ms": mean("plan_p50_ms"),
                      "plan_p95_ms": mean("plan_p95_ms")}
    return out


def _markdown(summary: dict[float, dict], scenario: str) -> str:
    keys = list(next(iter(summary.values())))
    lines = [f"# Closed loop: {scenario}", "", "| risk level | " + " | ".join(keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for level, row in summary.items():
        lines.append(f"| {level:g} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _plot(summary: dict[float, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(summary)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(levels, [summary[lv]["collision_rate"] for lv in levels], "o-", color="tab:red")
    axes[0].set(xlabel="risk level α", ylabel="collision rate", ylim=(-0.02, 1.02), title="collisions")
    axes[1].plot(levels, [summary[lv]["progress_m"] for lv in levels], "o-", color="tab:blue")
    axes[1].set(xlabel="risk level α", ylabel="progress [m]", title="progress")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate_closed_loop(scenario: str, seeds: list[int], risk_levels: list[float], out_dir: str | Path,
                         risk_measure: str = "cvar", planner: PlannerConfig | None = None,
                         model_path: str | None = None, workers: int = 2, biased_samples: int = 0,
                         num_scenarios: int | None = None) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    planner = planner or planner_config(planner_parameters(scenario))
    if num_scenarios is not None:
        planner = replace(planner, num_scenarios=num_scenarios)
    prediction = PredictionSettings.from_values(predictor_parameters())
    tasks = [EpisodeTask(scenario, s, lv, risk_measure, planner, prediction, model_path, biased_samples)
             for lv in risk_levels for s in seeds]
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers, initializer=tune_process) as pool:
        futures = [pool.submit(_run_task, t) for t in tasks]
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"{scenario} episodes", unit="ep"):
            rows.append(future.result())
    rows.sort(key=lambda r: (r["risk_level"], r["seed"]))
    with open(out / "episodes.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    (out / "summary.md").write_text(_markdown(summary, scenario))
    _plot(summary, out / "risk_vs_outcome.png")
    result = {"scenario": scenario, "seeds": len(seeds), "biased_samples": biased_samples,
              "planner": asdict(planner) | {"weights": None},
              "per_risk_level": {f"{lv:g}": v for lv, v in summary.items()},
              "outputs": [str(out / n) for n in ("episodes.csv", "summary.md", "risk_vs_outcome.png")]}
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    return result
