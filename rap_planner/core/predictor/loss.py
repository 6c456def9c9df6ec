"""Gaussian-mixture likelihood of whole future trajectories, safe on masked and degenerate input."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)
MIN_ONE_MINUS_RHO2 = 1e-6


def gaussian_log_prob(params: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """Bivariate normal log density of ``target_m`` (..., 2) under (μx, μy, σx, σy, ρ) params (..., 5)."""
    dx = (target_m[..., 0] - params[..., 0]) / params[..., 2]
    dy = (target_m[..., 1] - params[..., 1]) / params[..., 3]
    rho = params[..., 4]
    one_minus_r2 = (1.0 - rho * rho).clamp(min=MIN_ONE_MINUS_RHO2)
    mahalanobis2 = (dx * dx - 2.0 * rho * dx * dy + dy * dy) / one_minus_r2
    return -LOG_2PI - params[..., 2].log() - params[..., 3].log() - 0.5 * one_minus_r2.log() - 0.5 * mahalanobis2


def _step_log_prob(params: torch.Tensor, target_m: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Per-mode, per-step log density (..., K, T), exactly zero at missing steps (NaN targets allowed)."""
    mask = target_mask.bool() & torch.isfinite(target_m).all(-1)
    target = torch.where(mask[..., None], target_m, torch.zeros_like(target_m))
    logp = gaussian_log_prob(params, target[..., None, :, :])
    return torch.where(mask[..., None, :], logp, torch.zeros_like(logp))


def trajectory_log_likelihood(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor,
                              target_mask: torch.Tensor) -> torch.Tensor:
    """log Σ_k π_k Π_t N(y_t | μ_kt, Σ_kt) over the observed steps: (...)."""
    traj = _step_log_prob(params, target_m, target_mask).sum(-1)
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + traj, dim=-1)


def mixture_nll(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor, target_mask: torch.Tensor,
                agent_mask: torch.Tensor | None = None, wta_weight: float = 0.0) -> torch.Tensor:
    """Mixture NLL per observed future step, averaged over agents with any observed step.

    logits (..., K), params (..., K, T, 5), target_m (..., T, 2), target_mask (..., T). The optional
    winner-take-all term trains the mode closest to the truth (by masked ADE) on its own likelihood and
    the mode logits to pick it: plain mixture NLL tends to collapse all modes onto the mean.
    Returns 0 (with a gradient path) when nothing is observed.
    """
    mask = target_mask.bool() & torch.isfinite(target_m).all(-1)
    steps = mask.sum(-1)
    valid = steps > 0
    if agent_mask is not None:
        valid = valid & agent_mask.bool()
    step_logp = _step_log_prob(params, target_m, mask)
    traj = step_logp.sum(-1)
    log_pi = F.log_softmax(logits, dim=-1)
    ll = torch.logsumexp(log_pi + traj, dim=-1)
    total_steps = (steps * valid).sum().clamp(min=1)
    loss = -(torch.where(valid, ll, torch.zeros_like(ll))).sum() / total_steps
    if wta_weight > 0.0:
        loss = loss + wta_weight * _winner_take_all(logits, params, target_m, mask, valid, traj, total_steps)
    return loss


def _winner_take_all(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor, mask: torch.Tensor,
                     valid: torch.Tensor, traj: torch.Tensor, total_steps: torch.Tensor) -> torch.Tensor:
    target = torch.where(mask[..., None], target_m, torch.zeros_like(target_m))
    err = (params[..., :2] - target[..., None, :, :]).norm(dim=-1)  # (..., K, T)
    ade = torch.where(mask[..., None, :], err, torch.zeros_like(err)).sum(-1)
    best = ade.argmin(-1, keepdim=True).detach()
    best_ll = traj.gather(-1, best).squeeze(-1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), best.reshape(-1), reduction="none")
    ce = ce.view(valid.shape)
    zeros = torch.zeros_like(best_ll)
    n_agents = valid.sum().clamp(min=1)
    return -torch.where(valid, best_ll, zeros).sum() / total_steps + torch.where(valid, ce, zeros).sum() / n_agents
