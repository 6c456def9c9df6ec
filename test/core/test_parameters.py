"""The parameter schema: worded checks, "did you mean", ROS typing of files, and the core defaults it sets."""

import dataclasses
import functools
import math

import pytest

from rap_planner.core.costs import CostWeights
from rap_planner.core.parameters import (
    PLANNER,
    PREDICTOR,
    SIM,
    Param,
    ParameterError,
    Schema,
    file_section,
)
from rap_planner.core.pipeline import PredictionSettings
from rap_planner.core.planner import PlannerConfig


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("risk_level", "banana", "risk_level must be a number, got 'banana'"),
    ("risk_level", True, "risk_level must be a number, got True"),
    ("risk_level", 1.5, "risk_level must be <= 0.999, got 1.5"),
    ("risk_level", math.nan, "risk_level must be finite, got nan"),
    ("num_scenarios", 2.5, "num_scenarios must be an integer, got 2.5"),
    ("num_scenarios", 0, "num_scenarios must be >= 1, got 0"),
    ("risk_measure", "cvarr", "risk_measure must be one of mean, var, cvar, entropic, worst, got 'cvarr'"),
    ("refine", "yes", "refine must be true or false, got 'yes'"),
    ("lane_offsets_m", 3.5, "lane_offsets_m must be a list of numbers, got 3.5"),
    ("lane_offsets_m", ["a"], "lane_offsets_m must be a list of numbers, got ['a']"),
])
def test_values_are_refused_with_the_reason_in_words(name, value, reason):
    assert PLANNER.problem({name: value}) == reason
    with pytest.raises(ParameterError, match="^" + reason.replace("(", r"\(").replace("[", r"\[") + "$"):
        PLANNER.validate({name: value})


def test_an_unknown_name_is_an_error_that_suggests_the_closest_known_one():
    assert PLANNER.problem({"risk_levle": 0.5}) == (
        "unknown parameter 'risk_levle' for /planner; did you mean 'risk_level'?")
    assert PREDICTOR.problem({"max_agent": 3}) == (
        "unknown parameter 'max_agent' for /predictor; did you mean 'max_agents'?")
    far = SIM.problem({"zzz": 1})
    assert far.startswith("unknown parameter 'zzz' for /sim; known: scenario, seed, step_s")
    assert PLANNER.problem({"use_sim_time": True}) is None  # ROS 2's own parameter is known to every node


def test_in_files_an_integer_for_a_double_is_refused_as_ros_2_would_refuse_it():
    assert PLANNER.problem({"horizon_s": 5, "lane_offsets_m": [0, 3.5]}) is None  # in-process: a number is a number
    assert PLANNER.problem({"horizon_s": 5}, exact_types=True) == (
        "horizon_s must be written as doubles, e.g. 5.0 (ROS 2 refuses integers here), got 5")
    assert "e.g. [0.0, 3.5]" in PLANNER.problem({"lane_offsets_m": [0, 3.5]}, exact_types=True)
    assert PLANNER.problem({"horizon_s": 5.0, "lane_offsets_m": [0.0, 3.5]}, exact_types=True) is None


def test_core_defaults_are_the_schema_defaults_with_declared_zeros_mapped():
    weights = CostWeights()
    assert (weights.collision, weights.ttc) == (PLANNER["w_collision"].default, PLANNER["w_ttc"].default) \
        == (20000.0, 1000.0)
    config = PlannerConfig()
    assert config.target_speed_mps is None and config.cycle_budget_s == math.inf  # 0 declared as none / unbounded
    assert PLANNER.build_config(PlannerConfig(risk_level=0.1, weights=CostWeights(collision=1.0)),
                                PLANNER.defaults()) == config


def _another_value(param: Param) -> object:
    """An acceptable value other than the default (and not a declared 0)."""
    if param.choices is not None:
        return next(c for c in param.choices if c != param.default)
    if isinstance(param.default, bool):
        return not param.default
    return param.max_value if param.default != param.max_value else param.min_value


def _field(config: object, dotted: str) -> object:
    return functools.reduce(getattr, dotted.split("."), config)


def test_every_config_field_is_a_field_of_the_planner_config_and_gets_the_value():
    config = PlannerConfig()
    fields = [p for p in PLANNER.params if p.config_field is not None]
    assert len(fields) == 20
    for param in fields:
        value = _another_value(param)
        assert PLANNER.problem({param.name: value}) is None
        built = PLANNER.build_config(config, {param.name: value})
        assert _field(built, param.config_field) == value != _field(config, param.config_field)
        head = param.config_field.split(".")[0]
        assert dataclasses.replace(built, **{head: getattr(config, head)}) == config  # nothing else changed


def test_prediction_settings_defaults_are_the_predictor_schema_defaults():
    fields = [p.config_field for p in PREDICTOR.params if p.config_field is not None]
    assert fields == [f.name for f in dataclasses.fields(PredictionSettings)]
    assert PREDICTOR.build_config(PredictionSettings(max_agents=3, biased_samples=4), PREDICTOR.defaults()) \
        == PredictionSettings()


def test_declared_zeros_map_to_none_and_inf_and_other_values_pass_through():
    built = PLANNER.build_config(PlannerConfig(), {"target_speed_mps": 0.0, "cycle_budget_s": 0.0})
    assert built.target_speed_mps is None and built.cycle_budget_s == math.inf
    built = PLANNER.build_config(PlannerConfig(), {"target_speed_mps": 12, "cycle_budget_s": 0.05, "w_collision": 7})
    assert (built.target_speed_mps, built.cycle_budget_s, built.weights.collision) == (12.0, 0.05, 7.0)
    assert isinstance(built.weights.collision, float)


def test_a_schema_refuses_a_default_that_breaks_its_own_rules():
    with pytest.raises(ParameterError, match="x must be <= 1.0, got 5.0"):
        Param("x", 5.0, "Too big.", 0.0, 1.0)
    with pytest.raises(ParameterError, match="a default must be"):
        Param("x", (), "Empty lists have no ROS 2 type.")
    with pytest.raises(ParameterError, match="repeats"):
        Schema("n", (Param("a", 1, "A."), Param("a", 2, "A again.")))


def test_parameter_file_sections_apply_as_rcl_applies_them():
    data = {"/**": {"ros__parameters": {"rate_hz": 5.0, "frame_id": "odom"}},
            "planner": {"ros__parameters": {"rate_hz": 20.0}},
            "predictor": {"ros__parameters": {"max_agents": 3}}}
    assert file_section(data, "planner", "f.yaml") == {"rate_hz": 20.0, "frame_id": "odom"}
    assert file_section({"/planner": {"ros__parameters": {}}}, "planner", "f.yaml") == {}
    with pytest.raises(ParameterError, match="f.yaml: not a ROS 2 parameter file"):
        file_section(["risk_level"], "planner", "f.yaml")


def test_markdown_table_lists_every_parameter_with_its_unit_range_and_field():
    table = PLANNER.markdown_table().splitlines()
    assert len(table) == 2 + len(PLANNER.params)
    row = next(line for line in table if line.startswith("| `w_collision` |"))
    assert row == ("| `w_collision` | double | `20000.0` | - | 0 … 1e+07 | Cost per second of full footprint overlap: "
                   "must dominate progress. | `weights.collision` |")
    row = next(line for line in table if line.startswith("| `cycle_budget_s` |"))
    assert "0: no budget, always refine." in row
