"""`rap-planner eval closed-loop`: episodes per (planner, seed) in lock-step, in parallel processes.

Planners: ``rap`` at each risk level (label ``rap@<alpha>``) and the baselines ``sumo`` (SUMO's own
driver as the ego) and ``idm`` (IDM + MOBIL on the tracked agents), all on the same seeds and
scripted events, judged the same way (collisions with fault, off-lane time, progress, TTC, comfort).
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
PLANNERS = ("rap", "sumo", "idm")
COLUMNS = ("planner", "risk_level", "seed", "collision", "at_fault", "collision_side", "fault_reason", "goal_reached",
           "time_to_goal_s", "duration_s", "progress_m", "off_lane_s", "min_distance_m", "min_ttc_s",
           "max_abs_jerk_mps3", "fallback_count", "plan_p50_ms", "plan_p95_ms")


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
    planner_kind: str = "rap"  # one of PLANNERS
    until_s: float = math.inf

    @property
    def label(self) -> str:
        return planner_label(self.planner_kind, self.risk_level)


def planner_label(kind: str, risk_level: float) -> str:
    """``rap@0.9`` for the risk-aware planner at a risk level, the baseline's name otherwise."""
    return f"rap@{risk_level:g}" if kind == "rap" else kind


def _run_task(task: EpisodeTask) -> dict:
    from rap_planner.sim.closed_loop import LoopConfig, run_baseline_episode, run_episode
    from rap_planner.sim.scenarios import get_scenario

    loop = LoopConfig(scenario=task.scenario, seed=task.seed, until_s=task.until_s)
    if task.planner_kind == "rap":
        from rap_planner.core.predictor.runtime import ForecastModel

        model = ForecastModel.load(task.model_path) if task.model_path else ForecastModel.default()
        # lock-step evaluation waits for the solver: outcomes must not depend on how busy the machine is
        config = replace(task.planner, risk_level=task.risk_level, risk_measure=task.risk_measure,
                         refine_time_limit_s=EVAL_SOLVER_TIME_LIMIT_S)
        prediction = replace(task.prediction, biased_samples=task.biased_samples, sample_risk_level=task.risk_level)
        m = run_episode(loop, config, model, prediction).metrics
    else:
        speed = task.planner.target_speed_mps or get_scenario(task.scenario).speed_limit_mps
        m = run_baseline_episode(loop, task.planner_kind, speed).metrics
    latency = np.asarray(m.plan_latency_ms) if m.plan_latency_ms else np.full(1, np.nan)
    return {"planner": task.label, "risk_level": task.risk_level if task.planner_kind == "rap" else None,
            "seed": task.seed, "collision": m.collision, "at_fault": m.at_fault, "collision_side": m.collision_side,
            "fault_reason": m.fault_reason, "goal_reached": m.goal_reached, "time_to_goal_s": m.time_to_goal_s,
            "duration_s": m.duration_s, "progress_m": m.progress_m, "off_lane_s": m.off_lane_s,
            "min_distance_m": m.min_distance_m, "min_ttc_s": m.min_ttc_s, "max_abs_jerk_mps3": m.max_abs_jerk_mps3,
            "fallback_count": m.fallback_count, "plan_p50_ms": float(np.percentile(latency, 50)),
            "plan_p95_ms": float(np.percentile(latency, 95))}


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per planner label (in the rows' order): rates and means; inf (no closing agent) and nan skipped."""
    out: dict[str, dict] = {}
    for label in dict.fromkeys(r["planner"] for r in rows):
        group = [r for r in rows if r["planner"] == label]

        def mean(key: str, group: list[dict] = group) -> float:
            values = [float(r[key]) for r in group if math.isfinite(float(r[key]))]
            return float(np.mean(values)) if values else float("nan")

        out[label] = {"episodes": len(group), "collision_rate": mean("collision"),
                      "at_fault_collision_rate": mean("at_fault"), "goal_rate": mean("goal_reached"),
                      "progress_m": mean("progress_m"), "time_to_goal_s": mean("time_to_goal_s"),
                      "off_lane_s": mean("off_lane_s"), "min_ttc_s": mean("min_ttc_s"),
                      "min_distance_m": mean("min_distance_m"), "max_abs_jerk_mps3": mean("max_abs_jerk_mps3"),
                      "fallbacks_per_episode": mean("fallback_count"), "plan_p50_ms": mean("plan_p50_ms"),
                      "plan_p95_ms": mean("plan_p95_ms")}
    return out


def _markdown(summary: dict[str, dict], scenario: str) -> str:
    keys = list(next(iter(summary.values())))
    lines = [f"# Closed loop: {scenario}", "",
             "Means per episode; min TTC over episodes with a closing agent ahead; time to goal over goal episodes.",
             "", "| planner | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, row in summary.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[k]:.3g}" for k in keys) + " |")
    return "\n".join(lines) + "\n"


PLOTTED = (("collision_rate", "collision rate (per episode)", "collisions (solid: all, dashed: at fault)"),
           ("progress_m", "progress [m]", "progress along the route"),
           ("min_ttc_s", "min time to collision [s]", "min TTC (mean over episodes)"),
           ("off_lane_s", "time > 0.8 m off every lane centre [s]", "lane-centre compliance"))


def _plot(summary: dict[str, dict], path: Path, scenario: str) -> None:
    """Outcome against the risk level for rap; each baseline a horizontal line of its own colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rap = sorted((float(label.split("@")[1]), row) for label, row in summary.items() if label.startswith("rap@"))
    baselines = [(label, row) for label, row in summary.items() if not label.startswith("rap@")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, ylabel, title) in zip(axes.flat, PLOTTED, strict=True):
        if rap:
            ax.plot([lv for lv, _ in rap], [row[key] for _, row in rap], "o-", color="tab:red", label="rap (CVaR)")
            if key == "collision_rate":
                ax.plot([lv for lv, _ in rap], [row["at_fault_collision_rate"] for _, row in rap], "o--",
                        color="tab:red", label="rap at fault")
        for (label, row), colour in zip(baselines, ("tab:blue", "tab:green", "tab:gray"), strict=False):
            ax.axhline(row[key], color=colour, label=label)
            if key == "collision_rate":
                ax.axhline(row["at_fault_collision_rate"], color=colour, linestyle="--", label=f"{label} at fault")
        ax.set(xlabel="risk level α [-]", ylabel=ylabel, title=title)
        top = ax.get_ylim()[1]  # from zero: a 0.3 m difference in 650 m must not look like a cliff
        ax.set_ylim(0.0, 1.1 * top if top > 0.0 else 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylim(-0.02, 1.02)  # rates: the whole range
    fig.suptitle(f"Closed loop on {scenario}: outcome vs risk level, baselines as lines")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _json_number(value: float) -> float | None:
    """nan (nothing to average) and inf (never closing) as JSON null: strict parsers reject NaN."""
    return value if math.isfinite(value) else None


def evaluate_closed_loop(scenario: str, seeds: list[int], risk_levels: list[float], out_dir: str | Path,
                         risk_measure: str = "cvar", planner: PlannerConfig | None = None,
                         model_path: str | None = None, workers: int = 2, biased_samples: int = 0,
                         num_scenarios: int | None = None, planners: tuple[str, ...] = PLANNERS,
                         until_s: float = math.inf) -> dict:
    """Runs every (planner, seed) episode; writes episodes.csv, summary.md/json and the plot."""
    unknown = [p for p in planners if p not in PLANNERS]
    if unknown or not planners:
        raise ValueError(f"unknown planners {unknown}; choose from {', '.join(PLANNERS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    planner = planner or planner_config(planner_parameters(scenario))
    if num_scenarios is not None:
        planner = replace(planner, num_scenarios=num_scenarios)
    prediction = PredictionSettings.from_values(predictor_parameters())

    def task(kind: str, seed: int, level: float) -> EpisodeTask:
        return EpisodeTask(scenario, seed, level, risk_measure, planner, prediction, model_path, biased_samples,
                           kind, until_s)

    tasks = [task("rap", s, lv) for lv in sorted(risk_levels) for s in seeds if "rap" in planners]
    tasks += [task(kind, s, 0.0) for kind in planners if kind != "rap" for s in seeds]
    order = {label: i for i, label in enumerate(dict.fromkeys(t.label for t in tasks))}
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers, initializer=tune_process) as pool:
        futures = [pool.submit(_run_task, t) for t in tasks]
        for future in tqdm(as_completed(futures), total=len(futures), desc=f"{scenario} episodes", unit="ep"):
            rows.append(future.result())
    rows.sort(key=lambda r: (order[r["planner"]], r["seed"]))
    with open(out / "episodes.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    (out / "summary.md").write_text(_markdown(summary, scenario))
    _plot(summary, out / "outcome_vs_risk.png", scenario)
    result = {"scenario": scenario, "seeds": len(seeds), "biased_samples": biased_samples,
              "planner": asdict(planner) | {"weights": None},
              "per_planner": {label: {k: _json_number(v) for k, v in row.items()} for label, row in summary.items()},
              "outputs": [str(out / n) for n in ("episodes.csv", "summary.md", "outcome_vs_risk.png")]}
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    return result
