"""Parameter files -> core configs, without ROS: the nodes and the in-process tools read the same YAML.

Every file is checked against the node's schema (``rap_planner.core.parameters``): an unknown key
or a value ROS 2 would refuse is a ``ParameterError`` naming the file and the parameter.
"""

from __future__ import annotations

from pathlib import Path

from rap_planner.core.parameters import PLANNER, PREDICTOR, SCHEMAS, read_parameter_file, scenario_parameter_file
from rap_planner.core.planner import PlannerConfig
from rap_planner.paths import share_dir


def node_parameters(path: str | Path, node: str) -> dict:
    """The ``ros__parameters`` of ``node`` in a ROS 2 parameter file (safe_load), checked against its schema."""
    return read_parameter_file(path, node, SCHEMAS.get(node))


def planner_parameters(scenario: str | None = None) -> dict:
    """Every planner parameter as planner_node runs with sim.launch.xml: the schema's defaults, then
    config/planner.yaml, then config/scenarios/<scenario>.yaml (the road)."""
    values: dict = PLANNER.defaults() | node_parameters(share_dir() / "config" / "planner.yaml", "planner")
    if scenario is not None:
        values.update(node_parameters(scenario_parameter_file(scenario), "planner"))
    return values


def predictor_parameters() -> dict:
    """Every predictor parameter as the launch files run it: the schema's defaults, then config/predictor.yaml."""
    return PREDICTOR.defaults() | node_parameters(share_dir() / "config" / "predictor.yaml", "predictor")


def planner_config(values: dict, base: PlannerConfig | None = None) -> PlannerConfig:
    """A validated PlannerConfig from planner_node parameter values (missing keys keep ``base``'s).

    Each value is checked against the schema (range, type) and lands in the field its parameter
    names; the node's own parameters (rate, frames, road) are ignored here.
    """
    PLANNER.validate(values)
    config = PLANNER.build_config(base or PlannerConfig(), values)
    config.validate()
    return config
