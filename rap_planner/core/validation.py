"""One set of checks for tracked agents and forecasts, run on all agents at once.

The ROS conversions, the bag evaluation and ``validate_forecasts`` all check here, so they cannot drift
apart. Each check runs over stacked or concatenated arrays of every agent (a few numpy passes: 200 agents
at 20 Hz) and yields per agent the first ``InputProblem`` in one fixed order of checks; the input's own
vocabulary (message fields or dataclass fields) is used only to word a problem for the user.

Rules: ``MESSAGE_RULES`` are what the stack accepts from outside (a value beyond them is an encoding or
unit error, and one such agent drags the predictor's float32 origin or overflows the planner's arithmetic);
``CORE_RULES`` only ask for what the planner's arithmetic needs (finite values, consistent shapes).
"""

from __future__ import annotations

import enum
import math
import operator
from collections import Counter
from collections.abc import Sequence, Sized
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer, Protocol

from rap_planner.core.types import ForecastSet

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.int8]

MAX_AGENT_ID = 2**63 - 1  # ids are uint64 on the wire but int64 arrays in the core (history, scenarios)
MIN_AGENT_ID = -(2**63)
# Beyond these a value is not a pose or speed in a local map frame (UTM stays below 1e7 m) but an error.
MAX_ABS_POSITION_M = 1e7
MAX_SPEED_MPS = 1e3
MAX_VARIANCE_M2 = 1e8  # a 10 km standard deviation says nothing; beyond it the planner's arithmetic overflows
MAX_LENGTH_M = 50.0
MAX_WIDTH_M = 10.0
MAX_FORECAST_STEPS = 1000  # as the predictor's config; 2^32-1 steps made the planner allocate 32 GB
FORECAST_DT_RANGE_S = (1e-3, 10.0)  # a forecast step outside this is a unit or encoding error, not a forecast
PSD_RELATIVE_SLACK = 1e-3  # float32 rounding of a singular covariance must not reject it
PSD_ABSOLUTE_SLACK_M4 = 1e-9


class Float32Buffer(Buffer, Sized, Protocol):
    """A float32[] message field: array.array("f") from rclpy, a numpy array from rosbags."""


class InputProblem(enum.IntEnum):
    """What is wrong with one agent's input (OK: nothing), or with a whole forecast set (the last two)."""

    OK = 0
    BAD_ID = 1  # outside int64
    DUPLICATE_ID = 2
    NON_FINITE = 3  # NaN or inf, or values whose sum overflows
    BAD_MODE_COUNT = 4
    BAD_SHAPE = 5  # array lengths or shapes that do not match the mode and step counts
    BAD_WEIGHTS = 6  # a negative mode weight, or all zero
    NOT_PSD = 7  # a covariance that is not positive semi-definite
    POSITION_OUT_OF_RANGE = 8
    VARIANCE_OUT_OF_RANGE = 9
    SPEED_OUT_OF_RANGE = 10
    BAD_FOOTPRINT = 11
    BAD_SAMPLES = 12  # sample arrays of the wrong shape, or not the same sample count for all agents
    BAD_SAMPLE_WEIGHTS = 13
    BAD_STEP = 14  # forecast dt or step count


class Field(enum.IntEnum):
    """Which part of an agent's input a problem is in (to word it; NONE where the agent is OK)."""

    NONE = 0
    ID = 1
    MODE_WEIGHTS = 2
    MEANS = 3
    COVARIANCES = 4
    FOOTPRINT = 5
    SAMPLES = 6
    STATE = 7  # a track's pose, velocity and size
    POSITION = 8
    VELOCITY = 9


@dataclass(frozen=True)
class Rules:
    """What an input must satisfy beyond finite values and consistent shapes (open intervals, inf: no limit)."""

    max_abs_position_m: float
    max_speed_mps: float
    max_variance_m2: float
    length_range_m: tuple[float, float]
    width_range_m: tuple[float, float]
    require_psd: bool
    unique_ids: bool

    @property
    def checks_moments(self) -> bool:
        """Whether the forecast means and covariances need checks beyond finiteness."""
        return self.require_psd or math.isfinite(self.max_abs_position_m) or math.isfinite(self.max_variance_m2)


MESSAGE_RULES = Rules(MAX_ABS_POSITION_M, MAX_SPEED_MPS, MAX_VARIANCE_M2, (0.0, MAX_LENGTH_M), (0.0, MAX_WIDTH_M),
                      require_psd=True, unique_ids=True)
CORE_RULES = Rules(math.inf, math.inf, math.inf, (-math.inf, math.inf), (-math.inf, math.inf), require_psd=False,
                   unique_ids=False)


@dataclass(frozen=True)
class AgentChecks:
    """Per agent the first problem found (``InputProblem.OK`` if none) and the field it is in."""

    problems: CodeArray  # (N,) InputProblem values
    fields: CodeArray  # (N,) Field values

    @property
    def ok(self) -> BoolArray:
        return np.equal(self.problems, InputProblem.OK)

    def first_bad(self) -> int | None:
        """Index of the first agent with a problem (in input order), or None."""
        bad = np.flatnonzero(self.problems)
        return int(bad[0]) if bad.size else None

    def problem(self, index: int) -> InputProblem:
        return InputProblem(int(self.problems[index]))


class _Flags:
    """Accumulates the first problem per agent: later checks never overwrite an earlier one."""

    def __init__(self, num_agents: int):
        self.problems = np.zeros(num_agents, np.int8)
        self.fields = np.zeros(num_agents, np.int8)

    def flag(self, bad: BoolArray, problem: InputProblem, field: Field, rows: IntArray | None = None) -> None:
        """Record ``problem`` for the agents where ``bad`` (over all agents, or over ``rows``) and none yet."""
        if not bad.any():  # the usual case, and the cheapest test
            return
        index = np.flatnonzero(bad) if rows is None else rows[bad]
        index = index[self.problems[index] == InputProblem.OK]
        self.problems[index] = problem
        self.fields[index] = field

    def unflagged(self) -> IntArray:
        return np.flatnonzero(self.problems == InputProblem.OK)


def _ids_out_of_range(agent_ids: Sequence[int]) -> BoolArray:
    if not agent_ids or min(agent_ids) >= MIN_AGENT_ID and max(agent_ids) <= MAX_AGENT_ID:
        return np.zeros(len(agent_ids), bool)
    return np.array([not MIN_AGENT_ID <= i <= MAX_AGENT_ID for i in agent_ids], bool)


def _repeated_ids(agent_ids: Sequence[int], rows: IntArray) -> BoolArray:
    """Over ``rows``: the id occurs more than once among them (which forecast is the agent's? neither)."""
    ids = [agent_ids[i] for i in rows]
    if len(set(ids)) == len(ids):
        return np.zeros(len(ids), bool)
    counts = Counter(ids)
    return np.array([counts[i] > 1 for i in ids], bool)


def _footprint_bad(lengths_m: FloatArray, widths_m: FloatArray, rules: Rules) -> BoolArray:
    (lo_l, hi_l), (lo_w, hi_w) = rules.length_range_m, rules.width_range_m
    return ~((lo_l < lengths_m) & (lengths_m < hi_l) & (lo_w < widths_m) & (widths_m < hi_w))


def _flag_footprints(flags: _Flags, lengths_m: FloatArray, widths_m: FloatArray, rules: Rules) -> None:
    flags.flag(~(np.isfinite(lengths_m) & np.isfinite(widths_m)), InputProblem.NON_FINITE, Field.FOOTPRINT)
    flags.flag(_footprint_bad(lengths_m, widths_m, rules), InputProblem.BAD_FOOTPRINT, Field.FOOTPRINT)


def _surely_finite(values: FloatArray) -> bool:
    """No NaN or inf, and no sum of some of the values overflows: two reductions clear the usual case."""
    return not values.size or bool(max(values.max(), -values.min()) < 1e300 / values.size)


def _segments_not_finite(values: FloatArray, sizes: IntArray) -> BoolArray:
    """Whether each consecutive segment of the given sizes (empty ones allowed) holds a NaN or inf, or values whose
    sum overflows (each segment's sum decides)."""
    sums = np.zeros(len(sizes))
    nonempty = sizes > 0
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf or an overflow is a finding here
        sums[nonempty] = np.add.reduceat(values, (np.cumsum(sizes) - sizes)[nonempty])
    return ~np.isfinite(sums)


def _segment_max(values: FloatArray, sizes: IntArray) -> FloatArray:
    """Maximum of each consecutive segment (all segments non-empty)."""
    return np.maximum.reduceat(values, np.cumsum(sizes) - sizes) if values.size else np.zeros(len(sizes))


def _segment_min(values: FloatArray, sizes: IntArray) -> FloatArray:
    return np.minimum.reduceat(values, np.cumsum(sizes) - sizes) if values.size else np.zeros(len(sizes))


def _segment_any(bad: BoolArray, sizes: IntArray) -> BoolArray:
    """Whether each consecutive segment (all non-empty) holds a True; one pass over the values if none does."""
    if not bad.any():
        return np.zeros(len(sizes), bool)
    return np.logical_or.reduceat(bad, np.cumsum(sizes) - sizes)


def _segment_beyond(values: FloatArray, limit: float, sizes: IntArray, signed: bool = False) -> BoolArray:
    """Whether each consecutive segment (all non-empty) holds a value above ``limit`` (``signed``: or below -limit).

    Two reductions over all values decide the usual case, that none is.
    """
    if not values.size or max(values.max(), -values.min() if signed else -math.inf) <= limit:
        return np.zeros(len(sizes), bool)
    return _segment_any((np.abs(values) if signed else values) > limit, sizes)


def _not_psd(cxx: FloatArray, cxy: FloatArray, cyy: FloatArray) -> BoolArray:
    """Elementwise: the 2x2 covariance is not positive semi-definite (float32 rounding tolerated)."""
    return (cxx < 0.0) | (cyy < 0.0) | (cxy * cxy > cxx * cyy * (1.0 + PSD_RELATIVE_SLACK) + PSD_ABSOLUTE_SLACK_M4)


def _flag_weights(flags: _Flags, weights: FloatArray, modes: IntArray, rows: IntArray) -> None:
    """Negative weights, or all zero (non-negative weights sum to 0 only if their maximum is 0)."""
    flags.flag((_segment_min(weights, modes) < 0.0) | ~(_segment_max(weights, modes) > 0.0), InputProblem.BAD_WEIGHTS,
               Field.MODE_WEIGHTS, rows)


def _flag_moments(flags: _Flags, moments: FloatArray, sizes: IntArray, rows: IntArray, rules: Rules) -> None:
    """Checks of (5, sum of sizes) x, y, var x, cov xy, var y; ``sizes`` values per agent of ``rows``."""
    x, y, cxx, cxy, cyy = moments
    if rules.require_psd:
        flags.flag(_segment_any(_not_psd(cxx, cxy, cyy), sizes), InputProblem.NOT_PSD, Field.COVARIANCES, rows)
    if math.isfinite(limit := rules.max_abs_position_m):
        flags.flag(_segment_beyond(x, limit, sizes, signed=True) | _segment_beyond(y, limit, sizes, signed=True),
                   InputProblem.POSITION_OUT_OF_RANGE, Field.MEANS, rows)
    if math.isfinite(limit := rules.max_variance_m2):
        flags.flag(_segment_beyond(cxx, limit, sizes) | _segment_beyond(cyy, limit, sizes),
                   InputProblem.VARIANCE_OUT_OF_RANGE, Field.COVARIANCES, rows)


def _flag_sample_values(flags: _Flags, samples_m: FloatArray, rows: IntArray, rules: Rules) -> None:
    """Checks of (n, S, T, 2) samples of the agents ``rows``."""
    flat = samples_m.reshape(len(rows), math.prod(samples_m.shape[1:]))
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf or an overflow is a finding here
        flags.flag(~np.isfinite(flat.sum(axis=1)), InputProblem.NON_FINITE, Field.SAMPLES, rows)
    if math.isfinite(rules.max_abs_position_m):
        flags.flag(np.abs(flat).max(axis=1, initial=0.0) > rules.max_abs_position_m,
                   InputProblem.POSITION_OUT_OF_RANGE, Field.SAMPLES, rows)


def _g(value: float) -> str:
    return f"{value:.3g}"


def _footprint_words(length_m: float, width_m: float, rules: Rules) -> str:
    (lo_l, hi_l), (lo_w, hi_w) = rules.length_range_m, rules.width_range_m
    return (f"footprint {_g(length_m)}x{_g(width_m)} m out of range (length {lo_l:g} to {hi_l:g} m, "
            f"width {lo_w:g} to {hi_w:g} m)")


# --- tracks --------------------------------------------------------------------------------------------------

TRACK_STATE_COLUMNS = ("x_m", "y_m", "yaw_rad", "vx_mps", "vy_mps", "length_m", "width_m")


@dataclass(frozen=True)
class TrackChecks(AgentChecks):
    """``check_tracks``'s result; ``describe`` words an agent's problem."""

    agent_ids: Sequence[int]
    states: FloatArray
    rules: Rules

    def describe(self, index: int) -> str:
        """'agent <id>: <what is wrong> (<the limit>)' for logs and diagnostics."""
        x, y, _, vx, vy, length, width = (float(v) for v in self.states[index])
        problem, r = self.problem(index), self.rules
        if problem is InputProblem.BAD_ID:
            what = "id above 2^63-1 (the core keeps ids as int64)"
        elif problem is InputProblem.NON_FINITE:
            what = "non-finite pose/velocity/size"
        elif problem is InputProblem.BAD_FOOTPRINT:
            what = _footprint_words(length, width, r)
        elif problem is InputProblem.POSITION_OUT_OF_RANGE:
            what = f"position ({_g(x)}, {_g(y)}) m out of range (|x|, |y| <= {r.max_abs_position_m:g} m)"
        elif problem is InputProblem.SPEED_OUT_OF_RANGE:
            what = f"speed {_g(math.hypot(vx, vy))} m/s out of range (<= {r.max_speed_mps:g} m/s)"
        else:
            what = "no problem"
        return f"agent {self.agent_ids[index]}: {what}"


def check_tracks(agent_ids: Sequence[int], states: FloatArray, rules: Rules = MESSAGE_RULES) -> TrackChecks:
    """Checks N tracked agents; ``states`` is (N, 7) in the order of ``TRACK_STATE_COLUMNS``."""
    flags = _Flags(len(agent_ids))
    flags.flag(_ids_out_of_range(agent_ids), InputProblem.BAD_ID, Field.ID)
    flags.flag(~np.all(np.isfinite(states), axis=1), InputProblem.NON_FINITE, Field.STATE)
    flags.flag(_footprint_bad(states[:, 5], states[:, 6], rules), InputProblem.BAD_FOOTPRINT, Field.FOOTPRINT)
    flags.flag(np.abs(states[:, :2]).max(axis=1, initial=0.0) > rules.max_abs_position_m,
               InputProblem.POSITION_OUT_OF_RANGE, Field.POSITION)
    flags.flag(np.hypot(states[:, 3], states[:, 4]) > rules.max_speed_mps, InputProblem.SPEED_OUT_OF_RANGE,
               Field.VELOCITY)
    return TrackChecks(flags.problems, flags.fields, agent_ids, states, rules)


# --- forecasts in the message layout -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlatForecasts:
    """N agents' forecasts as messages carry them: per agent float32 buffers of K mode weights, K*T values of
    each per-step field (mean x, mean y, var x, cov xy, var y; index k*T + t) and S*T of each sample field (x, y).
    Field-major: ``per_step[f][i]`` is agent i's buffer of field f."""

    agent_ids: Sequence[int]
    weights: Sequence[Float32Buffer]
    per_step: Sequence[Sequence[Float32Buffer]]  # 5 x N
    samples: Sequence[Sequence[Float32Buffer]]  # 2 x N (empty buffers where the message has no samples)
    lengths_m: Sequence[float]
    widths_m: Sequence[float]
    num_steps: int
    num_modes: int  # the most modes an agent may have; 0: any number
    num_samples: int


@dataclass(frozen=True)
class FlatForecastChecks(AgentChecks):
    """``check_flat_forecasts``'s result, with the values it decoded (float64) for the conversion to use.

    ``rows`` are the agents whose array lengths are consistent; ``weights`` (sum K) and ``moments`` (5, sum K*T)
    hold their values in that order, ``samples_m`` (N, S, T, 2) those of all agents when all sample arrays fit.
    """

    forecasts: FlatForecasts
    rules: Rules
    rows: IntArray
    modes: IntArray  # (N,) mode count of every agent
    weights: FloatArray
    moments: FloatArray
    samples_m: FloatArray | None

    def describe(self, index: int) -> str:
        """'agent <id>: <what is wrong> (<the limit>)', in the message's terms."""
        f, r, k = self.forecasts, self.rules, int(self.modes[index])
        problem, field = self.problem(index), Field(int(self.fields[index]))
        values = k * f.num_steps
        if problem is InputProblem.BAD_ID:
            what = "id above 2^63-1 (the core keeps ids as int64)"
        elif problem is InputProblem.DUPLICATE_ID:
            what = "id appears more than once"
        elif problem is InputProblem.BAD_MODE_COUNT:
            what = f"{k} mode weights, expected 1 to num_modes = {f.num_modes}"
        elif problem is InputProblem.BAD_SHAPE:
            lengths = ", ".join(str(len(field_values[index])) for field_values in f.per_step)
            what = f"per-step arrays must hold num_modes*num_steps = {values} values (mean/cov lengths {lengths})"
        elif problem is InputProblem.BAD_SAMPLES:
            what = (f"sample arrays must hold num_samples*num_steps values ({f.num_samples}*{f.num_steps}, "
                    f"got {len(f.samples[0][index])} and {len(f.samples[1][index])})")
        elif field is Field.FOOTPRINT:
            what = _footprint_words(float(f.lengths_m[index]), float(f.widths_m[index]), r)
        elif field is Field.SAMPLES:
            what = f"samples non-finite or beyond {r.max_abs_position_m:g} m"
        elif problem is InputProblem.NON_FINITE:
            names = {Field.MODE_WEIGHTS: "mode_weights", Field.MEANS: "mean_x/mean_y"}
            what = f"non-finite values in the forecast ({names.get(field, 'cov_xx/cov_xy/cov_yy')})"
        elif problem is InputProblem.BAD_WEIGHTS:
            what = "mode weights must be non-negative with a positive sum"
        elif problem is InputProblem.NOT_PSD:
            what = "covariances must be positive semi-definite"
        elif problem is InputProblem.POSITION_OUT_OF_RANGE:
            what = f"forecast positions beyond {r.max_abs_position_m:g} m"
        elif problem is InputProblem.VARIANCE_OUT_OF_RANGE:
            what = f"forecast variances above {r.max_variance_m2:g} m^2"
        else:
            what = "no problem"
        return f"agent {f.agent_ids[index]}: {what}"


class PredictionFields(Protocol):
    """What ``flat_forecasts`` reads of a PredictionArray (an rclpy message, or one rosbags decoded)."""

    num_steps: int
    num_modes: int
    num_samples: int
    agents: Sequence[object]  # AgentPrediction: id, length, width and the float32[] fields


_PREDICTION_FIELDS = operator.attrgetter("id", "length", "width", "mode_weights", "mean_x", "mean_y", "cov_xx",
                                         "cov_xy", "cov_yy", "sample_x", "sample_y")


def flat_forecasts(msg: PredictionFields) -> FlatForecasts:
    """The message's agents, field-major (one attribute lookup per field and agent, no copies)."""
    columns = list(zip(*map(_PREDICTION_FIELDS, msg.agents), strict=True)) or [()] * 11
    ids, lengths, widths, weights, *per_step = columns
    return FlatForecasts(ids, weights, per_step[:5], per_step[5:], lengths, widths, int(msg.num_steps),
                         int(msg.num_modes), int(msg.num_samples))


def _decode(buffers: Sequence[Float32Buffer]) -> FloatArray:
    """The float32 buffers, one after another, as float64."""
    return np.frombuffer(b"".join(buffers), np.float32).astype(np.float64)


def _lengths(buffers: Sequence[Float32Buffer], n: int) -> IntArray:
    return np.fromiter(map(len, buffers), np.int64, n)


def check_flat_forecasts(forecasts: FlatForecasts, rules: Rules = MESSAGE_RULES) -> FlatForecastChecks:
    """Checks N forecasts in the message layout; the steps themselves (dt, T) are ``step_problem``'s."""
    f, n, steps = forecasts, len(forecasts.agent_ids), forecasts.num_steps
    flags = _Flags(n)
    flags.flag(_ids_out_of_range(f.agent_ids), InputProblem.BAD_ID, Field.ID)
    modes = _lengths(f.weights, n)
    weights = _decode(f.weights)
    lengths = np.stack([_lengths(field, n) for field in f.per_step])
    totals = lengths.sum(axis=1)
    joined = _decode([buffer for field in f.per_step for buffer in field])  # one copy for all five fields
    values = np.split(joined, np.cumsum(totals)[:-1])
    fields = (Field.MODE_WEIGHTS, Field.MEANS, Field.MEANS, Field.COVARIANCES, Field.COVARIANCES, Field.COVARIANCES)
    for field, field_values, sizes in zip(fields, [weights, *values], [modes, *lengths], strict=True):
        if not _surely_finite(field_values):
            flags.flag(_segments_not_finite(field_values, sizes), InputProblem.NON_FINITE, field)
    bad_count = np.equal(modes, 0)
    if f.num_modes:
        bad_count |= np.greater(modes, f.num_modes)
    flags.flag(bad_count, InputProblem.BAD_MODE_COUNT, Field.MODE_WEIGHTS)
    layout_bad = np.any(lengths != modes * steps, axis=0)
    flags.flag(layout_bad, InputProblem.BAD_SHAPE, Field.MEANS)
    rows = np.flatnonzero(~layout_bad & (modes > 0))
    if len(rows) < n:  # some agents' arrays do not line up with the others': decode the rest again
        weights = _decode([f.weights[i] for i in rows.tolist()])
        moments = _decode([field[i] for field in f.per_step for i in rows.tolist()])
    else:
        moments = joined
    moments = moments.reshape(5, moments.size // 5)
    _flag_weights(flags, weights, modes[rows], rows)
    if rules.checks_moments:
        _flag_moments(flags, moments, modes[rows] * steps, rows, rules)
    _flag_footprints(flags, np.array(f.lengths_m, np.float64), np.array(f.widths_m, np.float64), rules)
    samples_m = _check_flat_samples(flags, f, rules) if f.num_samples else None
    if rules.unique_ids:
        unflagged = flags.unflagged()
        flags.flag(_repeated_ids(f.agent_ids, unflagged), InputProblem.DUPLICATE_ID, Field.ID, unflagged)
    return FlatForecastChecks(flags.problems, flags.fields, f, rules, rows, modes, weights, moments, samples_m)


def _check_flat_samples(flags: _Flags, f: FlatForecasts, rules: Rules) -> FloatArray | None:
    """(N, S, T, 2) samples of all agents, or None if some agent's sample arrays are not S*T long."""
    n, size = len(f.agent_ids), f.num_samples * f.num_steps
    fits = (_lengths(f.samples[0], n) == size) & (_lengths(f.samples[1], n) == size)
    flags.flag(~fits, InputProblem.BAD_SAMPLES, Field.SAMPLES)
    rows = np.flatnonzero(fits)
    fields = f.samples if len(rows) == n else [[field[i] for i in rows.tolist()] for field in f.samples]
    xy = np.stack([_decode(field).reshape(len(rows), f.num_samples, f.num_steps) for field in fields], axis=-1)
    _flag_sample_values(flags, xy, rows, rules)
    return xy if len(rows) == n else None


# --- forecasts as core dataclasses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastSetChecks(AgentChecks):
    """``check_forecast_set``'s result; ``describe`` words an agent's problem in the dataclass's terms."""

    forecasts: ForecastSet
    rules: Rules
    num_samples: int | None  # S of the first agent with samples, None if none has any

    def describe(self, index: int) -> str:
        """'<non-finite|invalid> input: forecast of agent <id> <what>', as the planner words input problems."""
        a, r, steps = self.forecasts.agents[index], self.rules, self.forecasts.num_steps
        problem, field = self.problem(index), Field(int(self.fields[index]))
        names = {Field.MODE_WEIGHTS: "weights", Field.MEANS: "means_m", Field.COVARIANCES: "covariances_m2",
                 Field.FOOTPRINT: "footprint", Field.SAMPLES: "samples_m"}
        if problem is InputProblem.NON_FINITE:
            return f"non-finite input: forecast of agent {a.agent_id} {names[field]}"
        if problem is InputProblem.BAD_ID:
            what = "has an id outside int64"
        elif problem is InputProblem.DUPLICATE_ID:
            what = "appears more than once"
        elif problem in (InputProblem.BAD_MODE_COUNT, InputProblem.BAD_SHAPE):
            what = (f"has weights {np.shape(a.weights)}, means {np.shape(a.means_m)}, covariances "
                    f"{np.shape(a.covariances_m2)}; expected (K,), (K, {steps}, 2), (K, {steps}, 2, 2)")
        elif problem is InputProblem.BAD_WEIGHTS:
            what = "mode weights must be non-negative and not all 0"
        elif problem is InputProblem.BAD_SAMPLES:
            what = f"samples_m {() if a.samples_m is None else np.shape(a.samples_m)}, expected (S, {steps}, 2), same S"
        elif problem is InputProblem.BAD_FOOTPRINT:
            what = _footprint_words(float(a.length_m), float(a.width_m), r)
        elif problem is InputProblem.NOT_PSD:
            what = "covariances must be positive semi-definite"
        elif problem is InputProblem.VARIANCE_OUT_OF_RANGE:
            what = f"variances above {r.max_variance_m2:g} m^2"
        elif problem is InputProblem.POSITION_OUT_OF_RANGE:
            what = f"{names[field]} beyond {r.max_abs_position_m:g} m"
        else:
            what = "has no problem"
        return f"invalid input: forecast of agent {a.agent_id} {what}"


def _concatenated(arrays: list[npt.ArrayLike]) -> FloatArray:
    """The arrays (of any shapes and dtypes, or lists) flattened, one after another, as float64."""
    return np.concatenate(arrays, axis=None, dtype=np.float64) if arrays else np.zeros(0)


def _shapes(values: Sequence[npt.ArrayLike]) -> list[tuple[int, ...]]:
    return [v.shape if type(v) is np.ndarray else np.shape(v) for v in values]


_FORECAST_FIELDS = operator.attrgetter("agent_id", "weights", "means_m", "covariances_m2", "length_m", "width_m",
                                       "samples_m")


def _sizes(shapes: list[tuple[int, ...]]) -> IntArray:
    return np.fromiter(map(math.prod, shapes), np.int64, len(shapes))


def _layout(weights: npt.ArrayLike, means_m: npt.ArrayLike, covariances_m2: npt.ArrayLike,
            steps: int) -> tuple[int, bool, bool]:
    """(K = the number of weights, whether they are a non-empty vector, whether the means and covariances are
    (K, T, 2) and (K, T, 2, 2)); attributes of ndarrays are read directly, anything else through numpy."""
    w = weights.shape if type(weights) is np.ndarray else np.shape(weights)
    m = means_m.shape if type(means_m) is np.ndarray else np.shape(means_m)
    c = covariances_m2.shape if type(covariances_m2) is np.ndarray else np.shape(covariances_m2)
    k = math.prod(w)
    vector = len(w) == 1 and k > 0
    return k, vector, vector and m == (k, steps, 2) and c == (k, steps, 2, 2)


def check_forecast_set(forecasts: ForecastSet, rules: Rules = CORE_RULES) -> ForecastSetChecks:
    """Checks every agent of the set (arrays may be lists, of any dtype and shape); the set's stamp and steps
    are the caller's. Weights, means, covariances and samples are each checked concatenated over all agents."""
    agents, steps, n = forecasts.agents, forecasts.num_steps, len(forecasts.agents)
    columns = list(zip(*map(_FORECAST_FIELDS, agents), strict=True)) or [()] * 7
    ids, lengths_m, widths_m = columns[0], columns[4], columns[5]
    flags = _Flags(n)
    flags.flag(_ids_out_of_range(ids), InputProblem.BAD_ID, Field.ID)
    flat = [_concatenated(list(values)) for values in columns[1:4]]
    for field, values, arrays in zip((Field.MODE_WEIGHTS, Field.MEANS, Field.COVARIANCES), flat, columns[1:4],
                                     strict=True):
        if not _surely_finite(values):
            flags.flag(_segments_not_finite(values, _sizes(_shapes(arrays))), InputProblem.NON_FINITE, field)
    layouts = [_layout(w, m, c, steps) for w, m, c in zip(*columns[1:4], strict=True)]
    modes = np.fromiter((k for k, _, _ in layouts), np.int64, n)
    flags.flag(np.array([not vector for _, vector, _ in layouts], bool), InputProblem.BAD_MODE_COUNT,
               Field.MODE_WEIGHTS)
    layout_ok = np.array([fits for _, _, fits in layouts], bool)
    flags.flag(~layout_ok, InputProblem.BAD_SHAPE, Field.MEANS)
    weights = flat[0]
    rows = np.flatnonzero(layout_ok & (modes > 0))
    _flag_weights(flags, weights if len(rows) == n else _concatenated([agents[i].weights for i in rows]),
                  modes[rows], rows)
    if rules.checks_moments and len(rows):
        means = np.concatenate([np.asarray(agents[i].means_m, np.float64) for i in rows])
        covs = np.concatenate([np.asarray(agents[i].covariances_m2, np.float64) for i in rows])
        moments = np.stack([means[..., 0], means[..., 1], covs[..., 0, 0], covs[..., 0, 1], covs[..., 1, 1]])
        _flag_moments(flags, moments.reshape(5, -1), modes[rows] * steps, rows, rules)
    _flag_footprints(flags, np.array(lengths_m, np.float64), np.array(widths_m, np.float64), rules)
    num_samples = _check_samples(flags, columns[6], steps, rules)
    if rules.unique_ids:
        unflagged = flags.unflagged()
        flags.flag(_repeated_ids(ids, unflagged), InputProblem.DUPLICATE_ID, Field.ID, unflagged)
    return ForecastSetChecks(flags.problems, flags.fields, forecasts, rules, num_samples)


def _check_samples(flags: _Flags, samples_m: Sequence[npt.ArrayLike | None], steps: int, rules: Rules) -> int | None:
    """Checks the agents' samples (None: drawn from the mixture); returns S of the first agent with samples."""
    rows = np.array([i for i, s in enumerate(samples_m) if s is not None], np.int64)
    if not len(rows):
        return None
    given = [samples_m[i] for i in rows.tolist()]
    shapes = _shapes(given)
    num_samples = int(shapes[0][0]) if shapes[0] else 0
    fits = np.array([s == (num_samples, steps, 2) for s in shapes], bool)
    flags.flag(~fits, InputProblem.BAD_SAMPLES, Field.SAMPLES, rows)
    if fits.any():
        samples = np.stack([np.asarray(s, np.float64) for s, ok in zip(given, fits.tolist(), strict=True) if ok])
        _flag_sample_values(flags, samples, rows[fits], rules)
    return num_samples


# --- whole-set problems ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetProblem:
    """A problem of a whole forecast set, not of one agent's part of it."""

    kind: InputProblem
    words: str  # for the user: what is wrong and the limit


def step_problem(dt_s: float, num_steps: int, num_agents: int) -> SetProblem | None:
    """Why a message's forecast steps cannot be used, or None."""
    lo, hi = FORECAST_DT_RANGE_S
    if not (math.isfinite(dt_s) and dt_s > 0.0):
        words = f"prediction dt {dt_s} is not a positive number"
    elif not lo <= dt_s <= hi:
        words = f"prediction dt {dt_s:.3g} s is outside [{lo:g}, {hi:g}] s"
    elif num_steps == 0 and num_agents:
        words = "prediction has agents but num_steps is 0"
    elif num_steps > MAX_FORECAST_STEPS:
        words = f"prediction num_steps {num_steps} is above {MAX_FORECAST_STEPS}"
    else:
        return None
    return SetProblem(InputProblem.BAD_STEP, words)


def sample_weights_problem(weights: FloatArray, num_samples: int) -> SetProblem | None:
    """Why the joint samples' weights cannot be used, or None."""
    with np.errstate(over="ignore"):  # a sum that overflows is a finding here
        total = float(weights.sum())
    if weights.shape == (num_samples,) and math.isfinite(total) and total > 0.0 and not (weights < 0.0).any():
        return None
    return SetProblem(InputProblem.BAD_SAMPLE_WEIGHTS,
                      f"sample_weights must hold num_samples finite values, non-negative with a positive sum "
                      f"(num_samples = {num_samples}, got {weights.shape[0] if weights.ndim == 1 else weights.shape})")
