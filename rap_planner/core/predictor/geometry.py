"""Masked-history helpers shared by the learned model and the kinematic baselines.

Every function is NaN-free on degenerate input (no valid points, duplicate points): the model must
produce finite outputs for absent agents, and the baselines must agree with it on what "current
position" and "heading" mean.
"""

from __future__ import annotations

import torch

MIN_HEADING_DISPLACEMENT_M = 0.5


def clean_history(hist_m: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Treat non-finite points as missing and zero every missing point."""
    mask = mask.bool() & torch.isfinite(hist_m).all(-1)
    return torch.where(mask[..., None], hist_m, torch.zeros_like(hist_m)), mask


def last_valid_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the most recent valid step along the last dim (0 where none is valid)."""
    steps = mask.shape[-1]
    idx = steps - 1 - torch.flip(mask, dims=(-1,)).int().argmax(-1)
    return torch.where(mask.any(-1), idx, torch.zeros_like(idx))


def gather_step(hist_m: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``hist_m[..., idx, :]`` for a per-agent index: (..., H, 2), (...) -> (..., 2)."""
    index = idx[..., None, None].expand(*idx.shape, 1, hist_m.shape[-1])
    return torch.gather(hist_m, -2, index).squeeze(-2)


def earliest_valid_in_window(mask: torch.Tensor, last_idx: torch.Tensor, window_steps: int) -> torch.Tensor:
    """Earliest valid step in ``[last_idx - window_steps, last_idx]`` (``last_idx`` itself if none)."""
    steps = torch.arange(mask.shape[-1], device=mask.device)
    inside = mask & (steps >= (last_idx[..., None] - window_steps)) & (steps <= last_idx[..., None])
    first = inside.int().argmax(-1)
    return torch.where(inside.any(-1), first, last_idx)


def velocity_estimate(hist_m: torch.Tensor, mask: torch.Tensor, dt_s: float,
                      window_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Current position and the mean velocity over the last ``window_steps`` valid steps.

    Averaging over a window (rather than the last difference) suppresses tracker noise.
    Returns ``(position_m, velocity_mps)``; velocity is zero with fewer than two valid points.
    """
    last = last_valid_index(mask)
    first = earliest_valid_in_window(mask, last, window_steps)
    pos = gather_step(hist_m, last)
    span_s = (last - first).to(hist_m.dtype) * dt_s
    disp = pos - gather_step(hist_m, first)
    vel = disp / span_s.clamp(min=dt_s)[..., None]
    return pos, torch.where((span_s > 0)[..., None], vel, torch.zeros_like(vel))


def heading_from_velocity(vel_mps: torch.Tensor, dt_s: float, window_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of the direction of travel; +x when the agent moved less than a threshold."""
    return _unit_or_x(vel_mps * (dt_s * window_steps))


def heading_from_history(hist_m: torch.Tensor, mask: torch.Tensor, pos_m: torch.Tensor, vel_mps: torch.Tensor,
                         dt_s: float, window_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Direction of travel, falling back to the whole history's displacement for slow agents.

    A vehicle that braked to a stop (queue, red light) keeps the heading it arrived with instead of
    snapping to the world +x axis; only agents that never moved get +x.
    """
    recent = vel_mps * (dt_s * window_steps)
    first = mask.int().argmax(-1)
    overall = pos_m - gather_step(hist_m, first)
    use_recent = recent.norm(dim=-1, keepdim=True) > MIN_HEADING_DISPLACEMENT_M
    return _unit_or_x(torch.where(use_recent, recent, overall))


def _unit_or_x(disp_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    norm = disp_m.norm(dim=-1)
    moved = norm > MIN_HEADING_DISPLACEMENT_M
    unit = disp_m / norm.clamp(min=1e-6)[..., None]
    return (torch.where(moved, unit[..., 0], torch.ones_like(norm)),
            torch.where(moved, unit[..., 1], torch.zeros_like(norm)))


def to_local(xy_m: torch.Tensor, origin_m: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """World points (..., P, 2) into per-agent frames given by origin (..., 2) and heading (...)."""
    d = xy_m - origin_m[..., None, :]
    c, s = cos[..., None], sin[..., None]
    return torch.stack((c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]), dim=-1)


def rotate(vec: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate vectors (..., 2) by the per-element heading (cos, sin) broadcast from the left."""
    return torch.stack((cos * vec[..., 0] - sin * vec[..., 1], sin * vec[..., 0] + cos * vec[..., 1]), dim=-1)


def covariance_params_to_world(sigma_m: torch.Tensor, rho: torch.Tensor, cos: torch.Tensor,
                               sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate a local (σx, σy, ρ) covariance into the world frame: Σw = R Σ Rᵀ, re-expressed as (σx, σy, ρ)."""
    sxx = sigma_m[..., 0] ** 2
    syy = sigma_m[..., 1] ** 2
    sxy = rho * sigma_m[..., 0] * sigma_m[..., 1]
    c2, s2, cs = cos * cos, sin * sin, cos * sin
    wxx = c2 * sxx - 2.0 * cs * sxy + s2 * syy
    wyy = s2 * sxx + 2.0 * cs * sxy + c2 * syy
    wxy = cs * (sxx - syy) + (c2 - s2) * sxy
    sx = wxx.clamp(min=1e-12).sqrt()
    sy = wyy.clamp(min=1e-12).sqrt()
    rho_w = (wxy / (sx * sy)).clamp(-0.999999, 0.999999)
    return torch.stack((sx, sy), dim=-1), rho_w
