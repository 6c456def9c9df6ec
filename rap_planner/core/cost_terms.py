"""The interaction terms of the cost, each written once as elementwise factors.

Every interaction term is separable in the Frenet frame: weight x f(longitudinal) x g(lateral) per
(agent, time step). Both the batched kernel (``CostModel.interaction_grid``, arrays (b, M, J) and
(b, J, L) in a reused workspace) and the one-trajectory path (``interaction_direct`` /
``interaction_gradient``, arrays (S, J)) build their factors with ``longitudinal_factors`` and
``lateral_factors``, and the pruning bound (``CostModel.within_reach``) evaluates the same factors at
the closest possible distances. Every function broadcasts and takes optional ``out=`` buffers (and
scratch buffers), so the kernel allocates nothing.

To add a separable term: one factor in each of ``longitudinal_factors`` and ``lateral_factors``, its
two derivatives in ``longitudinal_partials``, ``NUM_TERMS`` + 1, and, if it reaches further than
the collision and TTC terms, its bound in ``CostModel.within_reach``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # costs.py imports this module
    from rap_planner.core.costs import CostWeights

NUM_TERMS = 2  # collision, time to collision
EPS = 1e-12


@dataclass
class LongitudinalGeometry:
    """Ego against agents along the path (broadcastable arrays)."""

    ds_m: np.ndarray  # agent centre minus ego centre along s
    dist_m: np.ndarray  # |ds_m|
    reach_m: np.ndarray  # sum of the half lengths: the boxes touch at dist_m == reach_m
    approach_m: np.ndarray  # (v_ego - v_agent) * ttc_time_scale_s: the gap closed in the TTC's time scale


@dataclass
class LateralGeometry:
    """Ego against agents across the path (broadcastable arrays)."""

    dist_m: np.ndarray  # |d_agent - d_ego|
    reach_m: np.ndarray  # sum of the half widths


def ttc_time_scale_s(weights: CostWeights) -> float:
    """sqrt(2 sigma_1): the TTC factor is exp(-(TTC / this)^2)."""
    return math.sqrt(2.0 * weights.ttc_sigma_time_s2)


def clearance_m(dist_m: np.ndarray, reach_m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Free space between the boxes along one axis, max(dist - reach, 0)."""
    gap: np.ndarray = np.subtract(dist_m, reach_m, out=out)
    np.maximum(gap, 0.0, out=gap)
    return gap


def overlap_ramp(dist_m: np.ndarray, reach_m: np.ndarray, margin_m: float, scale: float = 1.0,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Soft overlap along one axis, scale * clip((reach + margin - dist) / (2 margin), 0, 1).

    scale when the boxes overlap by ``margin_m``, scale / 2 when they touch, 0 when ``margin_m`` apart:
    the product of both axes is a collision that a gradient can see coming.
    """
    ramp: np.ndarray = np.subtract(reach_m + margin_m, dist_m, out=out)
    np.multiply(ramp, scale / (2.0 * margin_m), out=ramp)
    bound = ramp.dtype.type  # np.clip computes in float64 when given Python floats
    np.clip(ramp, bound(0.0), bound(scale), out=ramp)
    return ramp


def can_overlap(dist_m: np.ndarray, reach_m: np.ndarray, margin_m: float) -> np.ndarray:
    """Where ``overlap_ramp`` is positive: the boxes are closer than ``margin_m`` along this axis."""
    near: np.ndarray = dist_m - reach_m < margin_m
    return near


def overlap_ramp_slope(dist_m: np.ndarray, reach_m: np.ndarray, margin_m: float, scale: float = 1.0) -> np.ndarray:
    """d overlap_ramp / d dist_m."""
    return np.where(np.abs(dist_m - reach_m) < margin_m, -scale / (2.0 * margin_m), 0.0)


def longitudinal_ttc_log_factor(lon: LongitudinalGeometry, log_scale: float = 0.0, out: np.ndarray | None = None,
                                work: np.ndarray | None = None, closing: np.ndarray | None = None
                                ) -> tuple[np.ndarray, np.ndarray]:
    """(log_scale - (gap / approach)^2, where the gap closes (ds * approach > 0)).

    With ``approach_m`` as in ``LongitudinalGeometry``, (gap / approach)^2 is TTC^2 / (2 sigma_1) at
    the current closing speed. ``work`` (float) is scratch; ``closing`` (bool) is filled.
    """
    work = np.multiply(lon.ds_m, lon.approach_m, out=work)
    closes: np.ndarray = np.greater(work, 0.0, out=closing)
    np.multiply(lon.approach_m, lon.approach_m, out=work)
    np.add(work, EPS, out=work)
    log_factor = clearance_m(lon.dist_m, lon.reach_m, out=out)
    np.multiply(log_factor, log_factor, out=log_factor)
    np.divide(log_factor, work, out=log_factor)
    np.subtract(log_scale, log_factor, out=log_factor)
    return log_factor, closes


def longitudinal_ttc_factor(lon: LongitudinalGeometry, log_scale: float = 0.0, out: np.ndarray | None = None,
                            work: np.ndarray | None = None, closing: np.ndarray | None = None) -> np.ndarray:
    """exp(log_scale - TTC^2 / (2 sigma_1)) where the gap closes, else 0: RAP's TTC term along the path."""
    factor, closes = longitudinal_ttc_log_factor(lon, log_scale, out=out, work=work, closing=closing)
    np.exp(factor, out=factor)
    np.multiply(factor, closes, out=factor)
    return factor


def lateral_ttc_log_factor(dist_m: np.ndarray, reach_m: np.ndarray, sigma_dist_m2: float,
                           out: np.ndarray | None = None) -> np.ndarray:
    """-clearance^2 / (2 sigma_2)."""
    log_factor = clearance_m(dist_m, reach_m, out=out)
    np.multiply(log_factor, log_factor, out=log_factor)
    np.multiply(log_factor, -0.5 / sigma_dist_m2, out=log_factor)
    return log_factor


def lateral_ttc_factor(dist_m: np.ndarray, reach_m: np.ndarray, sigma_dist_m2: float,
                       out: np.ndarray | None = None) -> np.ndarray:
    """exp(-clearance^2 / (2 sigma_2)): RAP's lateral decay of the TTC term."""
    factor = lateral_ttc_log_factor(dist_m, reach_m, sigma_dist_m2, out=out)
    np.exp(factor, out=factor)
    return factor


def term_scales(weights: CostWeights, dt_s: float) -> tuple[float, float]:
    """(collision scale, log of the TTC scale): each term's weight x dt, folded into its longitudinal factor."""
    return weights.collision * dt_s, math.log(max(weights.ttc * dt_s, EPS))


def longitudinal_factors(lon: LongitudinalGeometry, weights: CostWeights, dt_s: float,
                         out: Sequence[np.ndarray | None] = (None,) * NUM_TERMS,
                         work: np.ndarray | None = None, closing: np.ndarray | None = None) -> list[np.ndarray]:
    """Per term, weight x dt x its longitudinal factor (``out[k]`` filled in place when given)."""
    col_scale, ttc_log_scale = term_scales(weights, dt_s)
    return [
        overlap_ramp(lon.dist_m, lon.reach_m, weights.collision_margin_m, col_scale, out=out[0]),
        longitudinal_ttc_factor(lon, ttc_log_scale, out=out[1], work=work, closing=closing),
    ]


def lateral_factors(lat: LateralGeometry, weights: CostWeights,
                    out: Sequence[np.ndarray | None] = (None,) * NUM_TERMS) -> list[np.ndarray]:
    """Per term, its lateral factor (``out[k]`` filled in place when given)."""
    return [
        overlap_ramp(lat.dist_m, lat.reach_m, weights.collision_margin_m, out=out[0]),
        lateral_ttc_factor(lat.dist_m, lat.reach_m, weights.ttc_sigma_dist_m2, out=out[1]),
    ]


def longitudinal_partials(lon: LongitudinalGeometry, factors: Sequence[np.ndarray], weights: CostWeights,
                          dt_s: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per term, d factor / d s_ego and d factor / d v_ego, given ``longitudinal_factors(lon, ...)``.

    Exact derivatives of the definitions above (EPS included); d dist / d s_ego = -sign(ds).
    """
    col_scale, _ = term_scales(weights, dt_s)
    sign = np.sign(lon.ds_m)
    col_ds = -sign * overlap_ramp_slope(lon.dist_m, lon.reach_m, weights.collision_margin_m, col_scale)
    ttc = factors[1]
    inv_approach2 = 1.0 / (lon.approach_m * lon.approach_m + EPS)
    gap = clearance_m(lon.dist_m, lon.reach_m)
    ttc_ds = 2.0 * ttc * gap * inv_approach2 * sign  # d/d dist = -2 gap / approach^2 * factor
    ttc_dv = (2.0 * ttc_time_scale_s(weights)) * ttc * gap * gap * inv_approach2 * inv_approach2 * lon.approach_m
    return [col_ds, ttc_ds], [np.zeros_like(col_ds), ttc_dv]
