"""One schema per node: every parameter's name, type, unit, range, description and default, once.

Everything else is derived from these records, so nothing can drift: the ROS declarations and
descriptors (``rap_planner.ros.params``), the validation of parameter files (``rap_planner.config``
and the launch interpreter: an unknown key is an error with a "did you mean"), the defaults of the
core dataclasses (``PlannerConfig``, ``CostWeights``; a test keeps ``PredictionSettings`` equal) and
the README's parameter tables (``rap-planner param table``). A parameter that sets a core config
field names it (dotted, e.g. ``weights.collision``); a 0 that stands for "none" or "unbounded" in
the core is declared with ``ZeroMeans``, not mapped by hand.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

import numpy as np
import yaml

from rap_planner import topics
from rap_planner.core.risk import RISK_MEASURES
from rap_planner.paths import share_dir

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ParamValue = bool | int | float | str | tuple[float, ...] | tuple[str, ...]
T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")

# ROS 2 type names of the kinds a default can have (its Python type is the parameter's type).
BOOL, INTEGER, DOUBLE, STRING, DOUBLE_ARRAY, STRING_ARRAY = (
    "bool", "integer", "double", "string", "double[]", "string[]")
_IN_WORDS = {BOOL: "true or false", INTEGER: "an integer", DOUBLE: "a number", STRING: "a string",
             DOUBLE_ARRAY: "a list of numbers", STRING_ARRAY: "a list of strings"}

SCENARIO_NAMES = ("highway_cutin", "merge", "intersection")  # each has config/scenarios/<name>.yaml


class ParameterError(ValueError):
    """A parameter value or parameter file the schema refuses; the message says which and why."""


@dataclass(frozen=True)
class ZeroMeans:
    """A parameter value of 0 that stands for ``value`` (None: none, math.inf: unbounded) in the core config."""

    value: float | None
    meaning: str  # in words, for descriptions: "the reference path's speed limit"


@dataclass(frozen=True)
class Param:
    """One parameter. ``default``'s type is the parameter's type (ROS 2 parameters are typed)."""

    name: str
    default: ParamValue
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    unit: str = ""  # "" for flags and text, "-" for dimensionless numbers
    config_field: str | None = None  # dotted field of the core config it sets; None: the node's own
    zero: ZeroMeans | None = None

    def __post_init__(self) -> None:
        reason = self.problem(self.default, exact_types=True)
        if reason is not None:
            raise ParameterError(f"schema default: {reason}")

    @property
    def kind(self) -> str:
        """The ROS 2 type: bool, integer, double, string, double[] or string[]."""
        return value_kind(self.default)

    def full_description(self) -> str:
        """The description with what 0 means and whether the parameter is read-only."""
        parts = [self.description]
        if self.zero is not None:
            parts.append(f"0: {self.zero.meaning}.")
        if self.read_only:
            parts.append("Read-only (set at start).")
        return " ".join(parts)

    def problem(self, value: object, exact_types: bool = False) -> str | None:
        """Why ``value`` is unacceptable, or None.

        ``exact_types``: as ROS 2 types a parameter file, where ``5`` is an integer that a double
        parameter refuses; values set in-process may give an int for a double.
        """
        reason = self._type_problem(value, exact_types)
        if reason is not None:
            return reason
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        if _is_number(value):
            number = float(value)
            if not math.isfinite(number):
                return f"{self.name} must be finite, got {value}"
            if self.min_value is not None and number < self.min_value:
                return f"{self.name} must be >= {self.min_value}, got {value}"
            if self.max_value is not None and number > self.max_value:
                return f"{self.name} must be <= {self.max_value}, got {value}"
        return None

    def _type_problem(self, value: object, exact_types: bool) -> str | None:
        kind = self.kind
        wrong = f"{self.name} must be {_IN_WORDS[kind]}, got {value!r}"
        if kind == BOOL:
            return None if isinstance(value, (bool, np.bool_)) else wrong
        if kind == INTEGER:
            return None if _is_integer(value) else wrong
        if kind == STRING:
            return None if isinstance(value, str) else wrong
        if kind == DOUBLE:
            if not _is_number(value):
                return wrong
            return _integer_for_double(self.name, value) if exact_types and _is_integer(value) else None
        if not _is_sequence(value):
            return wrong
        items = list(value)
        if kind == STRING_ARRAY:
            return None if all(isinstance(v, str) for v in items) else wrong
        if not all(_is_number(v) for v in items):
            return wrong
        if exact_types and any(_is_integer(v) for v in items):
            return _integer_for_double(self.name, value)
        return None

    def core_value(self, value: object) -> object:
        """``value`` as the core config takes it: a declared 0 mapped, doubles as floats, lists as tuples."""
        if self.zero is not None and _is_number(value) and value == 0:
            return self.zero.value
        if self.kind == DOUBLE and _is_number(value):
            return float(value)
        if self.kind == DOUBLE_ARRAY and _is_sequence(value):
            return tuple(_float(v) for v in value)
        if self.kind == STRING_ARRAY and _is_sequence(value):
            return tuple(value)
        return value


@dataclass(frozen=True)
class Schema:
    """The parameters of one node (``node``: its default name, e.g. "planner")."""

    node: str
    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        fields = [p.config_field for p in self.params if p.config_field is not None]
        if len(set(names)) != len(names) or len(set(fields)) != len(fields):
            raise ParameterError(f"schema of /{self.node} repeats a name or a config field")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for param in (*self.params, *ROS_PARAMETERS):
            if param.name == name:
                return param
        raise ParameterError(self.unknown(name))

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in (*self.params, *ROS_PARAMETERS))

    def defaults(self) -> dict[str, ParamValue]:
        return {p.name: p.default for p in self.params}

    def unknown(self, name: str) -> str:
        """The error for a name the node does not have, with the closest known one."""
        close = difflib.get_close_matches(name, self.names + tuple(p.name for p in ROS_PARAMETERS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(self.names)}"
        return f"unknown parameter '{name}' for /{self.node}; {hint}"

    def problem(self, values: Mapping[str, object], exact_types: bool = False) -> str | None:
        """The first unknown name or unacceptable value in ``values``, or None."""
        for name, value in values.items():
            if name not in self:
                return self.unknown(name)
            reason = self[name].problem(value, exact_types)
            if reason is not None:
                return reason
        return None

    def validate(self, values: Mapping[str, object], exact_types: bool = False) -> None:
        reason = self.problem(values, exact_types)
        if reason is not None:
            raise ParameterError(reason)

    def by_field(self, config_field: str) -> Param:
        for param in self.params:
            if param.config_field == config_field:
                return param
        raise KeyError(f"no parameter of /{self.node} sets {config_field}")

    def config_default(self, config_field: str, kind: type[T]) -> T:
        """The core default of ``config_field`` (a dataclass field default): the parameter's default, mapped."""
        value = self.by_field(config_field).core_value(self.by_field(config_field).default)
        if not isinstance(value, kind):
            raise TypeError(f"{config_field}: the schema gives {value!r}, not {kind.__name__}")
        return value

    def optional_config_default(self, config_field: str, kind: type[T]) -> T | None:
        """As ``config_default`` for a field whose default may be None (a declared 0 meaning none)."""
        value = self.by_field(config_field).core_value(self.by_field(config_field).default)
        return None if value is None else self.config_default(config_field, kind)

    def build_config(self, base: D, values: Mapping[str, object]) -> D:
        """``base`` with every field set that a parameter in ``values`` names (dotted paths into nested dataclasses)."""
        config = base
        for param in self.params:
            if param.config_field is not None and param.name in values:
                config = _replaced(config, param.config_field.split("."), param.core_value(values[param.name]))
        return config

    def markdown_table(self) -> str:
        """The README table of this node's parameters."""
        with_fields = any(p.config_field is not None for p in self.params)
        header = ["parameter", "type", "default", "unit", "range", "description"] + (["core field"] * with_fields)
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for p in self.params:
            row = [f"`{p.name}`", p.kind, f"`{_text(p.default)}`", p.unit, _range_text(p),
                   p.full_description().replace("|", "\\|")]
            if with_fields:
                row.append(f"`{p.config_field}`" if p.config_field else "")
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)


def value_kind(value: object) -> str:
    """The ROS 2 type of a default; raises for a value no ROS 2 parameter can hold."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return STRING_ARRAY
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, float) for v in value):
        return DOUBLE_ARRAY
    raise ParameterError(f"a default must be a bool, int, float, str or non-empty list of floats or strs: {value!r}")


def _is_number(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_integer(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_sequence(value: object) -> TypeGuard[Sequence[object]]:
    """A list, tuple, array.array (rclpy's arrays) or numpy array; not a string."""
    return (isinstance(value, Sequence) and not isinstance(value, (str, bytes))) or isinstance(value, np.ndarray)


def _integer_for_double(name: str, value: object) -> str:
    """ROS 2 types ``5`` in a parameter file as an integer and refuses it for a double parameter."""
    example = [_float(v) for v in value] if _is_sequence(value) else _float(value)
    return f"{name} must be written as doubles, e.g. {example!r} (ROS 2 refuses integers here), got {value!r}"


def _float(value: object) -> float:
    if not _is_number(value):
        raise ParameterError(f"not a number: {value!r}")
    return float(value)


def _replaced(config: D, path: Sequence[str], value: object) -> D:
    head, rest = path[0], path[1:]
    inner: Any = value if not rest else _replaced(getattr(config, head), rest, value)
    return dataclasses.replace(config, **{head: inner})


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return repr(value)


def _range_text(param: Param) -> str:
    if param.choices is not None:
        return ", ".join(f"`{c}`" for c in param.choices)
    low, high = (None if v is None else int(v) if param.kind == INTEGER else v
                 for v in (param.min_value, param.max_value))
    if low is not None and high is not None:
        return f"{low:g} … {high:g}" if param.kind == DOUBLE else f"{low} … {high}"
    if low is not None:
        return f"≥ {low}"
    return f"≤ {high}" if high is not None else ""


def file_section(data: object, node: str, source: str) -> dict[str, object]:
    """The ``ros__parameters`` for ``node`` in a parsed ROS 2 parameter file.

    Sections apply as rcl applies them: ``/**`` first, then the node's own (``planner`` or ``/planner``).
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ParameterError(f"{source}: not a ROS 2 parameter file (node names at the top level expected)")
    values: dict[str, object] = {}
    for key in ("/**", node, f"/{node}"):
        section = data.get(key)
        if section is None:
            continue
        params = section.get("ros__parameters") if isinstance(section, Mapping) else None
        if params is not None and not isinstance(params, Mapping):
            raise ParameterError(f"{source}: the ros__parameters of '{key}' are not a mapping")
        values.update(params or {})
    return values


def read_parameter_file(path: str | Path, node: str, schema: Schema | None) -> dict[str, object]:
    """``node``'s parameters in a YAML file (safe_load: a python tag is refused, never run), checked
    against ``schema`` as ROS 2 will type them (``5`` is no double); None: not checked."""
    values = file_section(yaml.safe_load(Path(path).read_text()), node, str(path))
    reason = schema.problem(values, exact_types=True) if schema is not None else None
    if reason is not None:
        raise ParameterError(f"{path}: {reason}")
    return values


def scenario_parameter_file(scenario: str) -> Path:
    """config/scenarios/<scenario>.yaml: the road facts the simulator and the planner both read."""
    if scenario not in SCENARIO_NAMES:
        raise ParameterError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIO_NAMES)}")
    return share_dir() / "config" / "scenarios" / f"{scenario}.yaml"


ROS_PARAMETERS = (Param("use_sim_time", False, "ROS 2's own: take time from /clock."),)  # every node has them


_NO_LIMIT = ZeroMeans(None, "no limit")

PLANNER = Schema("planner", (  # core config: PlannerConfig (core/planner.py)
    Param("risk_measure", "cvar", "Risk measure of the cost distribution.", choices=tuple(RISK_MEASURES),
          config_field="risk_measure"),
    Param("risk_level", 0.9, "Risk level alpha: 0 is risk-neutral, towards 1 the worst case.", 0.0, 0.999,
          unit="-", config_field="risk_level"),
    Param("num_scenarios", 64, "Joint scenarios drawn from the forecasts per cycle.", 1, 4096, unit="-",
          config_field="num_scenarios"),
    Param("horizon_s", 5.0, "Planning horizon (a whole multiple of the 0.2 s step).", 1.0, 10.0, unit="s",
          config_field="horizon_s"),
    Param("rate_hz", 10.0, "Planning rate.", 0.5, 50.0, unit="Hz"),
    Param("prediction_timeout_s", 0.5, "Forecasts older than this trigger the braking fallback.", 0.05, 5.0,
          unit="s", config_field="prediction_timeout_s"),
    Param("odom_timeout_s", 0.5, "Odometry older than this triggers the braking fallback.", 0.05, 5.0, unit="s"),
    Param("target_speed_mps", 0.0, "Desired cruise speed.", 0.0, 60.0, unit="m/s", config_field="target_speed_mps",
          zero=ZeroMeans(None, "the reference path's speed limit")),
    Param("speed_limit_mps", 0.0, "Speed limit of the reference path (a road fact: config/scenarios/).", 0.0, 60.0,
          unit="m/s", zero=_NO_LIMIT),
    Param("w_collision", 20000.0, "Cost per second of full footprint overlap: must dominate progress.", 0.0, 1e7,
          unit="-", config_field="weights.collision"),
    Param("w_ttc", 1000.0, "Scale of RAP's time-to-collision cost, per second.", 0.0, 1e7, unit="-",
          config_field="weights.ttc"),
    Param("w_progress", 1.0, "Cost weight of speed tracking, per (m/s)² s of speed error.", 0.0, 1e6, unit="-",
          config_field="weights.progress"),
    Param("w_comfort", 0.1, "Cost weight of acceleration and jerk, per (m/s²)² s.", 0.0, 1e6, unit="-",
          config_field="weights.comfort"),
    Param("w_lane", 1.0, "Cost weight of lateral offset from the target lane, per m² s.", 0.0, 1e6, unit="-",
          config_field="weights.lane"),
    Param("trigger_on_predictions", False, "Plan as soon as forecasts and odometry of one instant are in "
          "(lock-step simulation) instead of on the timer."),
    Param("refine", True, "Refine the best candidate with the cvxpy CVaR program.", config_field="refine"),
    Param("cycle_budget_s", 0.0, "Skip the refinement when it would end a plan later than this after it started, "
          "publishing the best sampled candidate (real-time use).", 0.0, 10.0, unit="s", config_field="cycle_budget_s",
          zero=ZeroMeans(math.inf, "no budget, always refine")),
    Param("refine_time_limit_s", 0.02, "Wall-time limit of the refinement solver; past it the sampled best is "
          "kept. Lock-step evaluation raises it so that outcomes do not depend on machine load.", 0.001, 10.0,
          unit="s", config_field="refine_time_limit_s"),
    Param("safety_check", True, "RSS-style check after ranking: the lowest-risk candidate that keeps a safe "
          "braking gap to its leaders is taken, else a controlled in-lane stop.", config_field="safety_check"),
    Param("rss_response_time_s", 0.5, "RSS response time of the ego.", 0.0, 3.0, unit="s",
          config_field="safety.response_time_s"),
    Param("rss_ego_accel_mps2", 2.0, "RSS: the ego's largest acceleration during its response time.", 0.0, 10.0,
          unit="m/s²", config_field="safety.ego_max_accel_mps2"),
    Param("rss_ego_brake_mps2", 4.0, "RSS: the braking the ego commits to when a gap is short (its proper "
          "response).", 0.5, 15.0, unit="m/s²", config_field="safety.ego_min_brake_mps2"),
    Param("rss_leader_brake_mps2", 8.0, "RSS: the hardest a leader may brake.", 0.5, 15.0, unit="m/s²",
          config_field="safety.leader_max_brake_mps2"),
    Param("seed", 0, "Seed of the scenario sampler.", 0, 2**31 - 1, unit="-", config_field="seed"),
    Param("frame_id", "map", "Planning frame (REP 105); inputs in other frames are rejected."),
    Param("ego_length_m", 4.5, "Ego footprint length.", 1.0, 20.0, unit="m"),
    Param("ego_width_m", 1.8, "Ego footprint width.", 0.5, 4.0, unit="m"),
    Param("reference_x_m", (0.0, 1000.0), f"Default reference path x until {topics.REFERENCE_PATH} arrives.",
          unit="m"),
    Param("reference_y_m", (0.0, 0.0), "Default reference path y.", unit="m"),
    Param("lane_width_m", 3.5, "Lane width (a road fact: config/scenarios/).", 2.0, 6.0, unit="m"),
    Param("lane_offsets_m", (0.0,), "Lateral offsets of usable lanes from the reference, left positive "
          "(a road fact: config/scenarios/).", unit="m"),
    Param("publish_markers", True,
          f"Publish {topics.PLAN_MARKERS} markers (the plan and a spread of scored candidates)."),
    Param("marker_rate_hz", 5.0, "Marker publishing rate: building them costs about as much as a tenth of a plan.",
          0.1, 50.0, unit="Hz"),
))

PREDICTOR = Schema("predictor", (  # core config: PredictionSettings (core/pipeline.py)
    Param("model_path", "", "Checkpoint (.safetensors with its .json beside it); empty: the shipped model.",
          read_only=True),
    Param("device", "cpu", "Torch device for inference (the model is small: CPU keeps latency lowest).",
          choices=("cpu",), read_only=True),
    Param("rate_hz", 10.0, "Prediction rate.", 0.5, 50.0, unit="Hz"),
    Param("max_agents", 64, "Agents predicted per cycle, nearest to the ego first.", 1, 1024, unit="-",
          config_field="max_agents"),
    Param("max_track_age_s", 1.0, "A track unseen this long is forgotten.", 0.1, 10.0, unit="s",
          config_field="max_track_age_s"),
    Param("frame_id", "map", "Frame the tracks must be in (REP 105); others are rejected."),
    Param("trigger_on_tracks", False, "Predict as soon as tracks arrive (lock-step simulation) instead of on "
          "the timer."),
    Param("publish_markers", True, f"Publish {topics.PREDICTION_MARKERS} markers."),
    Param("biased_samples", 0, "Risk-biased weighted joint samples per cycle for the ego's current plan (RAP); "
          "0: mixtures only.", 0, 1024, unit="-", config_field="biased_samples"),
    Param("sample_risk_level", 0.9, "Risk level the samples are biased for.", 0.0, 0.999, unit="-",
          config_field="sample_risk_level"),
    Param("sampler_path", "", "Biased sampler checkpoint; empty: the shipped one.", read_only=True),
    Param("marker_rate_hz", 2.0, "Marker publishing rate: markers cost more than the forecasts.", 0.1, 50.0,
          unit="Hz"),
))

SIM = Schema("sim", (
    Param("scenario", "highway_cutin", "Scenario to simulate.", choices=SCENARIO_NAMES, read_only=True),
    Param("seed", 0, "Traffic and noise seed.", 0, 2**31 - 1, read_only=True, unit="-"),
    Param("step_s", 0.1, "Simulation step.", 0.01, 1.0, read_only=True, unit="s"),
    Param("lockstep", True, "Advance only once the plan for the current step arrived.", read_only=True),
    Param("realtime_factor", 1.0, "Real-time mode: simulated seconds per wall second.", 0.1, 20.0, unit="-"),
    Param("plan_wait_s", 2.0, "Lock-step watchdog: advance without a new plan after this wall time.", 0.05, 30.0,
          unit="s"),
    Param("pos_noise_m", 0.0, "Tracker position noise, 1 sigma.", 0.0, 5.0, unit="m"),
    Param("vel_noise_mps", 0.0, "Tracker velocity noise, 1 sigma.", 0.0, 5.0, unit="m/s"),
    Param("dropout_prob", 0.0, "Probability that a track is missing from one message.", 0.0, 0.9, unit="-"),
    Param("frame_id", "map", "World frame of everything published (REP 105)."),
    Param("record", True, "Keep every step in memory for the episode summary and rendering."),
))

SCHEMAS: dict[str, Schema] = {s.node: s for s in (PLANNER, PREDICTOR, SIM)}


def markdown_tables(schemas: Sequence[Schema] = (PLANNER, PREDICTOR, SIM)) -> str:
    """Every node's table under its name: what the README's "Parameters" section holds."""
    return "\n\n".join(f"#### `/{s.node}`\n\n{s.markdown_table()}" for s in schemas)
