"""Offline prediction metrics and plan statistics from a recorded bag (``make demo``, a replay).

Prediction: every agent forecast of every PredictionArray is compared with what the agent then did,
i.e. its positions in later TrackedAgentArray messages linearly interpolated to the forecast times
(header stamp + (t + 1)·dt). Header stamps, not bag timestamps, are the clock: recorders stamp bags
with wall or source time, the messages carry the time the data refers to. A step is observed when
the agent was seen on both sides of it at most ``max_gap_s`` apart; a forecast is scored on its
observed leading steps, so steps past the bag's end or past an agent's disappearance are skipped.

- minADE, minFDE (minimum over modes), miss rate (minFDE > ``miss_threshold_m``) and the trajectory
  NLL of the mixture (per step) use the forecasts whose whole horizon was observed, so every number
  refers to the same horizon, as in the offline predictor evaluation;
- RMSE of the most likely mode and the mean minimum-over-modes error per horizon step use every
  observed step, also of forecasts cut short by the end of the bag.

Forecasts are scored for the most common (dt, steps, modes) layout of the bag; others are counted
as skipped. ``min_history_s`` > 0 also skips forecasts of agents seen for less than that before the
stamp (the offline predictor evaluation uses 1 s: nobody can guess a newcomer's speed); the default 0
scores everything the planner received.

Plans: count, fallback share, fallbacks per FallbackReason code (with one example detail each), planning time
percentiles, risk and expected cost over time.
Messages are decoded with the definitions stored in the bag (no ROS install needed).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from rosbags.highlevel import AnyReader

from rap_planner import topics
from rap_planner.core.predictor.metrics import min_ade_fde, per_second, trajectory_nll
from rap_planner.core.types import FallbackReason, PlanStatus
from rap_planner.core.validation import check_flat_forecasts, flat_forecasts, step_problem

_FALLBACK_BY_CODE = {r.value: r for r in FallbackReason}  # the message's FALLBACK_* codes (same values)
MISS_THRESHOLD_M = 2.0
MAX_GAP_S = 0.5  # longest gap in an agent's track that is bridged by interpolation
MIN_VARIANCE_M2 = 1e-6  # floor for degenerate (zero) forecast covariances
MAX_ABS_RHO = 1.0 - 1e-6
DT_DECIMALS = 6  # dt is float32 in the message: 0.2 arrives as 0.20000000298


@dataclass
class Forecast:
    """One agent's mixture from one PredictionArray: logits (K,), params (K, T, 5) = (μx, μy, σx, σy, ρ)."""

    stamp_s: float
    dt_s: float
    agent_id: int
    logits: np.ndarray
    params: np.ndarray


@dataclass
class BagContent:
    """What the evaluation needs from a bag; times in seconds since the header stamp of its first message."""

    tracks: dict[int, np.ndarray] = field(default_factory=dict)  # agent id -> (N, 3) rows t_s, x_m, y_m
    forecasts: list[Forecast] = field(default_factory=list)
    malformed_forecasts: int = 0  # agents in predictions that the stack would reject (core.validation)
    plans: list[dict] = field(default_factory=list)


def evaluate_bag(bag: Path, out_dir: Path, *, miss_threshold_m: float = MISS_THRESHOLD_M,
                 max_gap_s: float = MAX_GAP_S, min_history_s: float = 0.0, tracks_topic: str = topics.TRACKED_AGENTS,
                 prediction_topic: str = topics.PREDICTIONS, plan_topic: str = topics.PLAN) -> dict:
    """Write metrics.md, metrics.json, error_vs_horizon.png and plan_stats.png; return the JSON's dict.

    Undefined values (nothing to score) are None. Raises FileNotFoundError for a missing bag and
    ValueError when it holds neither predictions nor plans.
    """
    bag = Path(bag)
    content = read_bag(bag, tracks_topic, prediction_topic, plan_topic)
    if not content.forecasts and not content.plans:
        raise ValueError(f"{bag} holds no messages on {prediction_topic} or {plan_topic}: nothing to evaluate")
    prediction = {**prediction_metrics(content.tracks, content.forecasts, miss_threshold_m, max_gap_s, min_history_s),
                  "forecasts_malformed": content.malformed_forecasts}
    plans = plan_statistics(content.plans)
    result = _json_safe({"bag": str(bag), "prediction": prediction, "plans": plans})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "metrics.md").write_text(_markdown(result))
    _plot_error_vs_horizon(result["prediction"], out / "error_vs_horizon.png")
    _plot_plan_stats(result["plans"], out / "plan_stats.png")
    return result


# --- reading ---------------------------------------------------------------------------------------

def read_bag(bag: Path, tracks_topic: str = topics.TRACKED_AGENTS, prediction_topic: str = topics.PREDICTIONS,
             plan_topic: str = topics.PLAN) -> BagContent:
    """Decode the three topics (converted as they stream by, so predictions are not held twice);
    positions per agent sorted by time, duplicates of a stamp dropped."""
    if not Path(bag).exists():
        raise FileNotFoundError(f"no bag at {bag}")
    content = BagContent()
    positions: dict[int, list[tuple[float, float, float]]] = {}
    t0_ns = None
    with AnyReader([Path(bag)]) as reader:
        wanted = {tracks_topic, prediction_topic, plan_topic}
        for conn, _, data in reader.messages(connections=[c for c in reader.connections if c.topic in wanted]):
            msg = reader.deserialize(data, conn.msgtype)
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            t0_ns = stamp_ns if t0_ns is None else t0_ns
            t_s = (stamp_ns - t0_ns) * 1e-9
            if conn.topic == tracks_topic:
                for a in msg.agents:
                    positions.setdefault(int(a.id), []).append((t_s, a.x, a.y))
            elif conn.topic == prediction_topic:
                forecasts = _forecasts(msg, t_s)
                content.forecasts.extend(forecasts)
                content.malformed_forecasts += len(msg.agents) - len(forecasts)
            else:
                content.plans.append(_plan_row(msg, t_s))
    content.tracks = _tracks_by_agent(positions)
    return content


def _tracks_by_agent(by_agent: dict[int, list[tuple[float, float, float]]]) -> dict[int, np.ndarray]:
    tracks = {}
    for agent_id, samples in by_agent.items():
        arr = np.array(samples, dtype=np.float64)
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        _, first = np.unique(arr[:, 0], return_index=True)
        tracks[agent_id] = arr[first]
    return tracks


def _forecasts(msg, stamp_s: float) -> list[Forecast]:
    """Mixture parameters per agent; agents the stack would reject (``core.validation``'s checks: array lengths,
    non-finite values, weights, covariances, limits, repeated ids) are left out, all of them if the steps are bad."""
    steps, dt_s = int(msg.num_steps), round(float(msg.dt), DT_DECIMALS)
    if step_problem(float(msg.dt), steps, len(msg.agents)) or not msg.agents:
        return []
    checks = check_flat_forecasts(flat_forecasts(msg))
    modes = checks.modes[checks.rows]  # the decoded values are those of checks.rows
    mx, my, cxx, cxy, cyy = checks.moments.reshape(5, int(modes.sum()), steps)
    with np.errstate(invalid="ignore", over="ignore"):  # rejected agents' values are converted too, then dropped
        sx, sy = np.sqrt(np.maximum(cxx, MIN_VARIANCE_M2)), np.sqrt(np.maximum(cyy, MIN_VARIANCE_M2))
        rho = np.clip(cxy / (sx * sy), -MAX_ABS_RHO, MAX_ABS_RHO)
        params = np.stack([mx, my, sx, sy, rho], -1)
        starts = np.cumsum(modes) - modes
        weights = checks.weights / np.repeat(np.add.reduceat(checks.weights, starts), modes)
        logits = np.log(np.maximum(weights, 1e-12))
    ok, ids = checks.ok, checks.forecasts.agent_ids
    return [Forecast(stamp_s, dt_s, int(ids[row]), logits[start:start + k], params[start:start + k])
            for row, start, k in zip(checks.rows.tolist(), starts.tolist(), modes.tolist(), strict=True) if ok[row]]


def _plan_row(msg, stamp_s: float) -> dict:
    fallback = int(msg.status) != PlanStatus.OK.value
    return {"t_s": stamp_s, "fallback": fallback, "fallback_reason": _fallback_reason(msg).name if fallback else None,
            "reason": str(msg.status_reason),
            "planning_time_ms": 1e3 * float(msg.planning_time), "risk": float(msg.risk),
            "expected_cost": float(msg.expected_cost), "risk_setting": f"{msg.risk_measure}@{msg.risk_level:.2f}"}


def _fallback_reason(msg) -> FallbackReason:
    """UNSPECIFIED for a code this version does not know and in bags recorded before plans carried one."""
    return _FALLBACK_BY_CODE.get(int(getattr(msg, "fallback_reason", 0)), FallbackReason.UNSPECIFIED)


# --- prediction metrics ------------------------------------------------------------------------------

def observed_positions(track: np.ndarray | None, times_s: np.ndarray, max_gap_s: float = MAX_GAP_S) -> np.ndarray:
    """(T, 2) positions interpolated at ``times_s``, NaN where the agent was not seen on both sides
    within ``max_gap_s`` (before its first or after its last sighting, or across a long gap)."""
    out = np.full((len(times_s), 2), np.nan)
    if track is None or len(track) == 0:
        return out
    t = track[:, 0]
    hi = np.clip(np.searchsorted(t, times_s, side="left"), 0, len(t) - 1)
    lo = np.clip(hi - 1, 0, len(t) - 1)
    exact = np.isclose(t[hi], times_s, rtol=0.0, atol=1e-9)
    bracketed = (t[lo] <= times_s) & (times_s <= t[hi]) & (t[hi] - t[lo] <= max_gap_s)
    ok = exact | bracketed
    out[ok, 0] = np.interp(times_s[ok], t, track[:, 1])
    out[ok, 1] = np.interp(times_s[ok], t, track[:, 2])
    return out


def prediction_metrics(tracks: dict[int, np.ndarray], forecasts: list[Forecast],
                       miss_threshold_m: float = MISS_THRESHOLD_M, max_gap_s: float = MAX_GAP_S,
                       min_history_s: float = 0.0) -> dict:
    """Metrics over the forecasts of the most common layout; see the module docstring for what counts."""
    layouts = Counter((f.dt_s, f.params.shape[1], f.params.shape[0]) for f in forecasts)
    result: dict = {"forecasts_total": len(forecasts), "miss_threshold_m": miss_threshold_m, "max_gap_s": max_gap_s,
                    "min_history_s": min_history_s}
    if not layouts:
        return {**result, **_no_forecasts()}
    (dt_s, steps, modes), _ = layouts.most_common(1)[0]
    same_layout = [f for f in forecasts if (f.dt_s, f.params.shape[1], f.params.shape[0]) == (dt_s, steps, modes)]
    scored = [f for f in same_layout if _seen_since(tracks.get(f.agent_id), f.stamp_s - min_history_s)]
    truths = [_leading_observed(tracks.get(f.agent_id), f, max_gap_s) for f in scored]
    full = [i for i, y in enumerate(truths) if len(y) == steps]
    partial = [i for i, y in enumerate(truths) if 0 < len(y) < steps]
    result.update({"dt_s": dt_s, "num_steps": steps, "num_modes": modes, "forecasts_full_horizon": len(full),
                   "forecasts_partial": len(partial), "forecasts_skipped": len(forecasts) - len(full) - len(partial),
                   "forecasts_other_layout": len(forecasts) - len(same_layout),
                   "forecasts_short_history": len(same_layout) - len(scored)})
    result.update(_full_horizon_metrics([scored[i] for i in full], [truths[i] for i in full], miss_threshold_m))
    result.update(_per_step_errors(scored, truths, steps, dt_s))
    return result


def _no_forecasts() -> dict:
    return {"dt_s": None, "num_steps": 0, "num_modes": 0, "forecasts_full_horizon": 0, "forecasts_partial": 0,
            "forecasts_skipped": 0, "forecasts_other_layout": 0, "forecasts_short_history": 0, "minADE_m": None,
            "minFDE_m": None, "miss_rate": None, "nll": None, "horizon_s": [], "rmse_per_step_m": [],
            "min_error_per_step_m": [], "count_per_step": [], "rmse_per_s_m": []}


def _seen_since(track: np.ndarray | None, t_s: float) -> bool:
    return track is not None and len(track) > 0 and track[0, 0] <= t_s + 1e-9


def _leading_observed(track: np.ndarray | None, forecast: Forecast, max_gap_s: float) -> np.ndarray:
    """Observed positions of the forecast's leading steps, up to the first unobserved one: (n, 2)."""
    steps = forecast.params.shape[1]
    times_s = forecast.stamp_s + forecast.dt_s * np.arange(1, steps + 1)
    positions = observed_positions(track, times_s, max_gap_s)
    missing = np.flatnonzero(np.isnan(positions[:, 0]))
    return positions[: missing[0] if len(missing) else steps]


def _full_horizon_metrics(forecasts: list[Forecast], truths: list[np.ndarray], miss_threshold_m: float) -> dict:
    if not forecasts:
        return {"minADE_m": None, "minFDE_m": None, "miss_rate": None, "nll": None}
    logits = torch.as_tensor(np.stack([f.logits for f in forecasts]))
    params = torch.as_tensor(np.stack([f.params for f in forecasts]))
    target = torch.as_tensor(np.stack(truths))
    ade, fde = min_ade_fde(params, target)
    return {"minADE_m": float(ade.mean()), "minFDE_m": float(fde.mean()),
            "miss_rate": float((fde > miss_threshold_m).double().mean()),
            "nll": float(trajectory_nll(logits, params, target).mean())}


def _per_step_errors(forecasts: list[Forecast], truths: list[np.ndarray], steps: int, dt_s: float) -> dict:
    """Most likely mode's RMSE and the mean min-over-modes error at each step, over all observed steps."""
    sq_sum, min_sum, count = np.zeros(steps), np.zeros(steps), np.zeros(steps, dtype=np.int64)
    for f, truth in zip(forecasts, truths, strict=True):
        n = len(truth)
        err = np.linalg.norm(f.params[:, :n, :2] - truth[None], axis=-1)  # (K, n)
        sq_sum[:n] += err[int(np.argmax(f.logits))] ** 2
        min_sum[:n] += err.min(0)
        count[:n] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        rmse, min_err = np.sqrt(sq_sum / count), min_sum / count
    return {"horizon_s": [round(dt_s * (t + 1), DT_DECIMALS) for t in range(steps)], "rmse_per_step_m": rmse.tolist(),
            "min_error_per_step_m": min_err.tolist(), "count_per_step": count.tolist(),
            "rmse_per_s_m": per_second(rmse, dt_s)}


# --- plan statistics ---------------------------------------------------------------------------------

def plan_statistics(plans: list[dict]) -> dict:
    """Counts, fallback share and reasons, planning time percentiles, risk figures and their time series."""
    if not plans:
        return {"count": 0, "fallback_count": 0, "fallback_share": None, "fallback_reasons": {},
                "fallback_examples": {},
                "risk_settings": {}, "planning_time_ms": {"p50": None, "p95": None, "max": None},
                "risk": {"mean": None, "max": None}, "expected_cost": {"mean": None, "max": None},
                "series": {k: [] for k in ("t_s", "risk", "expected_cost", "planning_time_ms", "fallback")}}
    fallbacks = [p for p in plans if p["fallback"]]
    series = {k: [p[k] for p in plans] for k in ("t_s", "risk", "expected_cost", "planning_time_ms", "fallback")}
    times = np.array(series["planning_time_ms"])
    return {"count": len(plans), "fallback_count": len(fallbacks), "fallback_share": len(fallbacks) / len(plans),
            "fallback_reasons": dict(Counter(p["fallback_reason"] for p in fallbacks).most_common()),
            "fallback_examples": {p["fallback_reason"]: p["reason"] for p in reversed(fallbacks)},  # the first detail
            "risk_settings": dict(Counter(p["risk_setting"] for p in plans).most_common()),
            "planning_time_ms": {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95)),
                                 "max": float(times.max())},
            "risk": _finite_summary(series["risk"]), "expected_cost": _finite_summary(series["expected_cost"]),
            "series": series}


def _finite_summary(values: list[float]) -> dict:
    finite = np.array([v for v in values if math.isfinite(v)])
    return {"mean": float(finite.mean()), "max": float(finite.max())} if len(finite) else {"mean": None, "max": None}


# --- outputs -----------------------------------------------------------------------------------------

def _json_safe(value):
    """NaN/inf -> None so metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _markdown(result: dict) -> str:
    p, q = result["prediction"], result["plans"]
    lines = [f"# Bag evaluation: `{result['bag']}`", "", "## Prediction", "",
             f"{p['forecasts_total']} agent forecasts: {p['forecasts_full_horizon']} with the whole horizon observed, "
             f"{p['forecasts_partial']} cut short (end of bag or agent gone), {p['forecasts_skipped']} not scorable"
             f" ({p['forecasts_other_layout']} of them in a different dt/steps/modes layout, "
             f"{p['forecasts_short_history']} of agents seen for less than {p['min_history_s']} s); "
             f"{p['forecasts_malformed']} malformed forecasts ignored.", ""]
    if p["num_steps"]:
        lines += [f"Layout: dt {p['dt_s']} s, {p['num_steps']} steps, {p['num_modes']} modes.", "",
                  "| metric (whole-horizon forecasts) | value |", "| --- | --- |",
                  f"| minADE [m] | {_fmt(p['minADE_m'])} |", f"| minFDE [m] | {_fmt(p['minFDE_m'])} |",
                  f"| miss rate (minFDE > {p['miss_threshold_m']} m) | {_fmt(p['miss_rate'])} |",
                  f"| NLL per step [-] | {_fmt(p['nll'])} |", "",
                  "| horizon [s] | RMSE most likely mode [m] |", "| --- | --- |"]
        lines += [f"| {i + 1} | {_fmt(v)} |" for i, v in enumerate(p["rmse_per_s_m"])]
    lines += ["", "## Plans", ""]
    if q["count"]:
        lines += ["| statistic | value |", "| --- | --- |", f"| plans | {q['count']} |",
                  f"| fallback share | {_fmt(q['fallback_share'])} ({q['fallback_count']}) |",
                  f"| planning time p50 / p95 / max [ms] | {_fmt(q['planning_time_ms']['p50'], 1)} / "
                  f"{_fmt(q['planning_time_ms']['p95'], 1)} / {_fmt(q['planning_time_ms']['max'], 1)} |",
                  f"| risk mean / max | {_fmt(q['risk']['mean'])} / {_fmt(q['risk']['max'])} |",
                  f"| expected cost mean / max | {_fmt(q['expected_cost']['mean'])} / "
                  f"{_fmt(q['expected_cost']['max'])} |",
                  f"| risk settings | {', '.join(f'{k} ({n})' for k, n in q['risk_settings'].items())} |", ""]
        lines += ["Fallback reasons:", ""] + [f"- {reason}: {n} (e.g. \"{q['fallback_examples'][reason]}\")"
                                              for reason, n in q["fallback_reasons"].items()] \
            if q["fallback_reasons"] else ["No fallbacks."]
    else:
        lines += ["No plans in the bag."]
    return "\n".join(lines) + "\n"


def _nan(values: list) -> list[float]:
    """None (undefined in the JSON) back to NaN, which matplotlib leaves as a gap."""
    return [np.nan if v is None else v for v in values]


def _plot_error_vs_horizon(p: dict, path: Path) -> None:
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    if p["num_steps"]:
        ax.plot(p["horizon_s"], _nan(p["rmse_per_step_m"]), marker=".", label="RMSE, most likely mode")
        ax.plot(p["horizon_s"], _nan(p["min_error_per_step_m"]), marker=".", label="mean error, best mode")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no predictions in the bag", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="horizon [s]", ylabel="error [m]", title="prediction error vs horizon (all observed steps)")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)


def _plot_plan_stats(q: dict, path: Path) -> None:
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    s = q["series"]
    top.plot(s["t_s"], _nan(s["risk"]), label="risk")
    top.plot(s["t_s"], _nan(s["expected_cost"]), label="expected cost")
    for t in (t for t, fallback in zip(s["t_s"], s["fallback"], strict=True) if fallback):
        top.axvline(t, color="tab:red", alpha=0.3, lw=1)
    top.set(ylabel="cost [-]", title=f"{q['count']} plans, {q['fallback_count']} fallbacks (red)")
    bottom.plot(s["t_s"], s["planning_time_ms"], ".", ms=3)
    for key, style in (("p50", "--"), ("p95", ":")):
        if q["planning_time_ms"][key] is not None:
            bottom.axhline(q["planning_time_ms"][key], ls=style, color="k", label=key)
    bottom.set(xlabel="time since first message [s]", ylabel="planning time [ms]")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.savefig(path, dpi=120)
