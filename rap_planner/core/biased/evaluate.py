"""How well few samples estimate CVaR: risk-biased (importance-weighted) versus unbiased sampling.

For each case (a scene and one of the planner's candidate plans) the reference is CVaR_alpha of the
planner's real cost (``CostModel``) over ``reference_samples`` unbiased samples. For each sample
count S, ``repeats`` independent draws of S samples give an estimate each: weighted CVaR
(``core/risk.py``) of the biased sampler's weighted samples, and CVaR of the planner's own
unbiased (stratified) scenarios. The error is |estimate - reference| / |reference|, averaged over
draws and cases. Because the total cost includes the plan's scenario-independent part (speed
tracking, comfort, lane), the report also gives the error relative to the reference's
*interaction* part (reference - deterministic cost), which is the stricter figure.

Cases whose reference shows no risk at all (CVaR equal to the mean: nothing can hit the plan)
are left out, since every estimator is exact there; their number is reported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rap_planner.core.biased.problems import (
    EVAL_STREAM,
    RiskProblem,
    Scene,
    didactic_variation,
    highway_variation,
    scene_rng,
)
from rap_planner.core.biased.sampler import BiasedSampler, joint_samples
from rap_planner.core.risk import CVaR, validate_risk_level
from rap_planner.core.scenarios import sample_scenarios
from rap_planner.core.scenes import didactic_scene

DEFAULT_SAMPLE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_NO_RISK_RELATIVE = 1e-3  # cases whose reference CVaR exceeds the mean by less than this fraction are dropped


@dataclass
class EvalScene:
    """A named scene in a reporting group."""

    group: str
    name: str
    scene: Scene


@dataclass
class _Case:
    group: str
    name: str
    problem: RiskProblem
    candidate: int
    reference: float
    deterministic: float


def default_eval_scenes(seed: int = 0, didactic_variations: int = 12, highway_scenes: int = 6) -> list[EvalScene]:
    """RAP's didactic scene as published, randomised variations of it, and highway scenes.

    The variations come from the evaluation seed stream, so none of them is a training scene.
    """
    scenes = [EvalScene("didactic", "didactic_default", didactic_scene())]
    scenes += [EvalScene("didactic_var", f"didactic_{i}",
                         didactic_variation(scene_rng(seed, EVAL_STREAM, "didactic", i)))
               for i in range(didactic_variations)]
    scenes += [EvalScene("highway", f"highway_{i}", highway_variation(scene_rng(seed, EVAL_STREAM, "highway", i)))
               for i in range(highway_scenes)]
    return scenes


def _plans(problem: RiskProblem, alpha: float, seed: int) -> list[int]:
    """The keep-speed plan and the planner's CVaR-best plan (chosen on a separate 256-sample draw)."""
    positions = sample_scenarios(problem.forecasts, 256, seed).positions_m
    best = int(np.argmin(CVaR().risk(problem.costs(positions), None, alpha)))
    return list(dict.fromkeys([problem.keep_speed_candidate(), best]))


def _cases(scenes: Sequence[EvalScene], alpha: float, reference_samples: int, seed: int) -> tuple[list[_Case], int]:
    """(cases with risk, number of cases dropped for having none)."""
    cases, dropped = [], 0
    for j, item in enumerate(scenes):
        problem = RiskProblem.from_scene(item.scene)
        plans = _plans(problem, alpha, seed + 7919 * j + 1)
        positions = sample_scenarios(problem.forecasts, reference_samples, seed + 7919 * j + 2).positions_m
        costs = problem.costs(positions, np.array(plans))
        for row, candidate in enumerate(plans):
            reference = float(CVaR().risk(costs[row], None, alpha))
            if reference - costs[row].mean() <= _NO_RISK_RELATIVE * abs(reference):
                dropped += 1
                continue
            cases.append(_Case(item.group, f"{item.name}/c{candidate}", problem, candidate, reference,
                               problem.deterministic_cost(candidate)))
    return cases, dropped


def _estimates(case: _Case, sampler: BiasedSampler, alpha: float, num: int, seeds: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """(biased estimates (R,), unbiased estimates (R,), mean normalised ESS of the biased weights)."""
    problem, plan = case.problem, case.problem.plan_xy(case.candidate)
    biased = [joint_samples(sampler.sample(problem.forecasts, plan, alpha, num, int(s))) for s in seeds]
    weights = np.stack([w for _, w in biased])
    biased_pos = np.concatenate([p for p, _ in biased])
    plain_pos = np.concatenate([sample_scenarios(problem.forecasts, num, int(s)).positions_m for s in seeds])
    measure = CVaR()
    biased_cost = problem.costs(biased_pos, np.array([case.candidate]))[0].reshape(len(seeds), num)
    plain_cost = problem.costs(plain_pos, np.array([case.candidate]))[0].reshape(len(seeds), num)
    est_b = np.array([float(measure.risk(c, w, alpha)) for c, w in zip(biased_cost, weights, strict=True)])
    est_u = measure.risk(plain_cost, None, alpha)
    ess = float(np.mean(1.0 / np.sum(weights**2, axis=1) / num))
    return est_b, est_u, ess


def evaluate_risk_estimation(
    sampler: str | Path | BiasedSampler,
    out_dir: str | Path,
    risk_level: float = 0.95,
    sample_counts: Sequence[int] = DEFAULT_SAMPLE_COUNTS,
    reference_samples: int = 4096,
    scenes: Sequence[EvalScene] | None = None,
    repeats: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """CVaR estimation error vs sample count, biased vs unbiased; writes risk_estimation.{md,png,json}.

    Returns per-group and overall mean relative errors (lists over ``sample_counts``) and the headline
    ``err_biased_16`` / ``err_unbiased_16`` (NaN when 16 is not among the counts).
    """
    alpha = validate_risk_level(risk_level)
    model = sampler if isinstance(sampler, BiasedSampler) else BiasedSampler.load(sampler)
    model.eval()
    counts = [int(c) for c in sample_counts]
    if not counts or min(counts) < 1 or repeats < 1 or reference_samples < 1:
        raise ValueError("sample_counts, repeats and reference_samples must be positive")
    scenes = default_eval_scenes(seed) if scenes is None else list(scenes)
    cases, dropped = _cases(scenes, alpha, reference_samples, seed)
    if not cases:
        raise ValueError("no evaluation case has any risk (every reference CVaR equals its mean)")
    rel = {kind: np.zeros((len(cases), len(counts))) for kind in ("biased", "unbiased")}
    excess = {kind: np.zeros((len(cases), len(counts))) for kind in ("biased", "unbiased")}
    ess = np.zeros((len(cases), len(counts)))
    jobs = [(i, j) for i in range(len(cases)) for j in range(len(counts))]
    for i, j in tqdm(jobs, desc="risk estimation", disable=not progress, leave=False):
        case = cases[i]
        seeds = np.random.default_rng((seed, i, counts[j])).integers(0, 2**31, size=repeats)
        est_b, est_u, ess[i, j] = _estimates(case, model, alpha, counts[j], seeds)
        interaction = max(case.reference - case.deterministic, 1e-12)
        for kind, est in (("biased", est_b), ("unbiased", est_u)):
            error = np.abs(est - case.reference)
            rel[kind][i, j] = np.mean(error) / abs(case.reference)
            excess[kind][i, j] = np.mean(error) / interaction
    result = _summarise(cases, counts, rel, excess, ess, dropped)
    result.update(risk_level=alpha, sample_counts=counts, reference_samples=reference_samples, repeats=repeats)
    return _write(result, Path(out_dir))


def _summarise(cases: list[_Case], counts: list[int], rel: dict[str, np.ndarray], excess: dict[str, np.ndarray],
               ess: np.ndarray, dropped: int) -> dict[str, Any]:
    groups = list(dict.fromkeys(c.group for c in cases))
    masks = {g: np.array([c.group == g for c in cases]) for g in groups}
    masks["all"] = np.ones(len(cases), bool)
    summary: dict[str, Any] = {"cases": {g: int(m.sum()) for g, m in masks.items()}, "dropped_no_risk": dropped,
                               "groups": {}}
    for g, m in masks.items():
        summary["groups"][g] = {
            "err_biased": rel["biased"][m].mean(axis=0).tolist(),
            "err_unbiased": rel["unbiased"][m].mean(axis=0).tolist(),
            "excess_err_biased": excess["biased"][m].mean(axis=0).tolist(),
            "excess_err_unbiased": excess["unbiased"][m].mean(axis=0).tolist(),
            "ess_fraction": ess[m].mean(axis=0).tolist(),
        }
    at16 = counts.index(16) if 16 in counts else None
    for g in masks:
        suffix = "" if g == "all" else f"_{g}"
        for key in ("err_biased", "err_unbiased", "excess_err_biased", "excess_err_unbiased"):
            summary[f"{key}_16{suffix}"] = summary["groups"][g][key][at16] if at16 is not None else float("nan")
    summary["per_case"] = [
        {"group": c.group, "name": c.name, "reference": c.reference, "deterministic": c.deterministic,
         "err_biased": rel["biased"][i].tolist(), "err_unbiased": rel["unbiased"][i].tolist()}
        for i, c in enumerate(cases)
    ]
    return summary


def _write(result: dict[str, Any], out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "risk_estimation.md", "plot": out / "risk_estimation.png",
             "json": out / "risk_estimation.json"}
    paths["markdown"].write_text(_table(result))
    _plot(result, paths["plot"])
    result["paths"] = {k: str(v) for k, v in paths.items()}
    paths["json"].write_text(json.dumps(result, indent=2))
    return result


def _table(result: dict[str, Any]) -> str:
    groups = list(result["groups"])
    alpha = result["risk_level"]
    lines = [
        f"# CVaR_{alpha:g} estimation error: risk-biased vs unbiased samples",
        "",
        f"Mean |estimate - reference| / |reference| over {result['repeats']} draws per case; reference: "
        f"{result['reference_samples']} unbiased samples; planner cost (`CostModel`). Cases (scene x plan): "
        + ", ".join(f"{g} {result['cases'][g]}" for g in groups)
        + f"; {result['dropped_no_risk']} risk-free cases left out.",
        "",
        "| samples | " + " | ".join(f"{g} biased | {g} unbiased" for g in groups) + " |",
        "| ---: | " + " | ".join("---: | ---:" for _ in groups) + " |",
    ]
    for j, count in enumerate(result["sample_counts"]):
        cells = [f"{100 * result['groups'][g][k][j]:.1f} %" for g in groups for k in ("err_biased", "err_unbiased")]
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Error relative to the reference's interaction part (reference - the plan's deterministic cost):",
        "",
        "| samples | " + " | ".join(f"{g} biased | {g} unbiased" for g in groups) + " |",
        "| ---: | " + " | ".join("---: | ---:" for _ in groups) + " |",
    ]
    for j, count in enumerate(result["sample_counts"]):
        cells = [f"{100 * result['groups'][g][k][j]:.1f} %" for g in groups
                 for k in ("excess_err_biased", "excess_err_unbiased")]
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    counts = result["sample_counts"]
    for i, (g, data) in enumerate(result["groups"].items()):
        colour = f"C{i}"
        ax.plot(counts, 100 * np.array(data["err_biased"]), "-o", color=colour, label=f"{g} biased")
        ax.plot(counts, 100 * np.array(data["err_unbiased"]), "--s", color=colour, label=f"{g} unbiased", alpha=0.7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of samples")
    ax.set_ylabel(f"mean |CVaR_{result['risk_level']:g} error| [% of reference]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
