"""Parameter files -> core configs, without ROS: the nodes and the in-process tools read the same YAML."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import yaml

from rap_planner.core.planner import PlannerConfig
from rap_planner.paths import share_dir


def node_parameters(path: str | Path, node: str) -> dict:
    """The ``ros__parameters`` of ``node`` in a ROS 2 parameter file (plain YAML, safe_load)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    section = data.get(node) or data.get(f"/{node}") or data.get("/**") or {}
    return dict(section.get("ros__parameters", {}))


def planner_parameters(scenario: str | None = None) -> dict:
    """config/planner.yaml, overlaid with config/scenarios/<scenario>.yaml as sim.launch.xml does."""
    values = node_parameters(share_dir() / "config" / "planner.yaml", "planner")
    if scenario is not None:
        values.update(node_parameters(share_dir() / "config" / "scenarios" / f"{scenario}.yaml", "planner"))
    return values


def planner_config(values: dict, base: PlannerConfig | None = None) -> PlannerConfig:
    """A validated PlannerConfig from planner_node parameter values (missing keys keep ``base``'s)."""
    base = base or PlannerConfig()
    weight_keys = {"w_collision": "collision", "w_ttc": "ttc", "w_progress": "progress", "w_comfort": "comfort",
                   "w_lane": "lane"}
    weights = dataclasses.replace(base.weights, **{f: values[k] for k, f in weight_keys.items() if k in values})
    direct = {k: values[k] for k in ("risk_measure", "risk_level", "num_scenarios", "horizon_s",
                                     "prediction_timeout_s", "refine", "seed") if k in values}
    if "target_speed_mps" in values:
        direct["target_speed_mps"] = values["target_speed_mps"] or None
    if "cycle_budget_s" in values:
        direct["cycle_budget_s"] = values["cycle_budget_s"] or math.inf
    config = dataclasses.replace(base, weights=weights, **direct)
    config.validate()
    return config
