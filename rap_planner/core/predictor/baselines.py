"""Constant-velocity and constant-acceleration forecasters with the learned model's output shapes.

They are the floor a learned model must beat, and the runtime fallback when no weights are found.
Both return one mode (K = 1) whose covariance grows with the horizon, separately along and across
the direction of travel, so NLL and calibration are defined for them too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rap_planner.core.predictor import geometry


@dataclass(frozen=True)
class KinematicConfig:
    """Horizon and the hand-set uncertainty growth of a kinematic baseline."""

    dt_s: float = 0.2
    horizon_steps: int = 25
    velocity_window_steps: int = 2
    sigma0_m: float = 0.3
    along_growth_mps: float = 0.8  # σ growth rate along the direction of travel
    cross_growth_mps: float = 0.25
    along_growth_mps2: float = 0.0  # extra quadratic growth for the acceleration model


def _horizon_s(cfg: KinematicConfig, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(1, cfg.horizon_steps + 1, dtype=like.dtype, device=like.device) * cfg.dt_s


def _with_covariance(mean_m: torch.Tensor, heading_vel_mps: torch.Tensor, cfg: KinematicConfig) -> torch.Tensor:
    """Attach an along/cross-track covariance, rotated to the world, to means (B, N, T, 2) -> (B, N, 1, T, 5)."""
    tau = _horizon_s(cfg, mean_m)
    along = (cfg.sigma0_m ** 2 + (cfg.along_growth_mps * tau) ** 2 + (0.5 * cfg.along_growth_mps2 * tau ** 2) ** 2)
    cross = cfg.sigma0_m ** 2 + (cfg.cross_growth_mps * tau) ** 2
    sigma_local = torch.stack((along.sqrt(), cross.sqrt()), -1).expand(*mean_m.shape[:-1], 2)
    cos, sin = geometry.heading_from_velocity(heading_vel_mps, cfg.dt_s, cfg.velocity_window_steps)
    cos = cos[..., None].expand(mean_m.shape[:-1])
    sin = sin[..., None].expand(mean_m.shape[:-1])
    sigma, rho = geometry.covariance_params_to_world(sigma_local, torch.zeros_like(cos), cos, sin)
    return torch.cat((mean_m, sigma, rho[..., None]), -1)[:, :, None]


def constant_velocity(hist_m: torch.Tensor, mask: torch.Tensor,
                      cfg: KinematicConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Extrapolate the mean velocity of the last ``velocity_window_steps``: logits (B, N, 1), params (B, N, 1, T, 5)."""
    cfg = cfg or KinematicConfig()
    hist_m, mask = geometry.clean_history(hist_m, mask)
    pos, vel = geometry.velocity_estimate(hist_m, mask, cfg.dt_s, cfg.velocity_window_steps)
    tau = _horizon_s(cfg, hist_m)
    mean = pos[..., None, :] + vel[..., None, :] * tau[:, None]
    return torch.zeros(*pos.shape[:-1], 1, dtype=pos.dtype), _with_covariance(mean, vel, cfg)


def constant_acceleration(hist_m: torch.Tensor, mask: torch.Tensor,
                          cfg: KinematicConfig | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Extrapolate velocity and acceleration estimated from two consecutive velocity windows."""
    cfg = cfg or KinematicConfig(along_growth_mps2=0.5)
    hist_m, mask = geometry.clean_history(hist_m, mask)
    w = cfg.velocity_window_steps
    pos, vel = geometry.velocity_estimate(hist_m, mask, cfg.dt_s, w)
    last = geometry.last_valid_index(mask)
    earlier_mask = mask & (torch.arange(mask.shape[-1], device=mask.device) <= (last - w)[..., None])
    _, vel_before = geometry.velocity_estimate(hist_m, earlier_mask, cfg.dt_s, w)
    has_before = earlier_mask.sum(-1) >= 2
    accel = torch.where(has_before[..., None], (vel - vel_before) / (w * cfg.dt_s), torch.zeros_like(vel))
    vel_now = vel + accel * (0.5 * w * cfg.dt_s)  # the window mean is the velocity at its midpoint
    tau = _horizon_s(cfg, hist_m)[:, None]
    mean = pos[..., None, :] + vel_now[..., None, :] * tau + 0.5 * accel[..., None, :] * tau ** 2
    return torch.zeros(*pos.shape[:-1], 1, dtype=pos.dtype), _with_covariance(mean, vel_now, cfg)
