"""Forecast metrics on agents with a fully observed future.

All functions take mode logits (S, K), Gaussian params (S, K, T, 5) = (μx, μy, σx, σy, ρ) and the true
future (S, T, 2), for S agents, in one common frame; they compute in float64.

Calibration is the coverage of the mixture's highest-density regions (HDR): the true position at
step t lies inside the α-HDR when the probability mass of points denser than it is at most α. That
mass is estimated by Monte Carlo from ``samples`` draws of the mixture (the whole mixture, not just
the most likely mode). A calibrated forecaster has coverage_α ≈ α.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rap_planner.core.predictor.loss import gaussian_log_prob

COVERAGE_LEVELS = (0.5, 0.9, 0.95)


def _f64(*tensors: torch.Tensor | np.ndarray) -> list[torch.Tensor]:
    return [torch.as_tensor(t).double() for t in tensors]


def displacement_errors(params: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """Euclidean error of every mode mean at every step: (S, K, T)."""
    params, target_m = _f64(params, target_m)
    errors: torch.Tensor = (params[..., :2] - target_m[:, None]).norm(dim=-1)
    return errors


def min_ade_fde(params: torch.Tensor, target_m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-agent minimum over modes of the average and of the final displacement error."""
    err = displacement_errors(params, target_m)
    return err.mean(-1).min(-1).values, err[..., -1].min(-1).values


def miss_rate(params: torch.Tensor, target_m: torch.Tensor, threshold_m: float = 2.0) -> float:
    """Share of agents whose best mode ends more than ``threshold_m`` from the truth."""
    _, fde = min_ade_fde(params, target_m)
    return float((fde > threshold_m).double().mean()) if len(fde) else float("nan")


def mixture_log_prob(logits: torch.Tensor, params: torch.Tensor, points_m: torch.Tensor) -> torch.Tensor:
    """log Σ_k π_k N(p | μ_kt, Σ_kt) for points (S, ..., T, 2): returns (S, ..., T)."""
    logits, params, points_m = _f64(logits, params, points_m)
    extra = points_m.dim() - 3
    log_pi = torch.log_softmax(logits, -1).view(logits.shape[0], *([1] * extra), -1, 1)
    p = params.view(params.shape[0], *([1] * extra), *params.shape[1:])
    return torch.logsumexp(log_pi + gaussian_log_prob(p, points_m.unsqueeze(-3)), dim=-2)


def trajectory_nll(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """Per-agent NLL of the whole future under the mixture of trajectories, divided by T."""
    logits, params, target_m = _f64(logits, params, target_m)
    traj = gaussian_log_prob(params, target_m[:, None]).sum(-1)
    return -torch.logsumexp(torch.log_softmax(logits, -1) + traj, -1) / target_m.shape[1]


def marginal_nll(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """Per-agent, per-step NLL of the position marginal at each step: (S, T)."""
    return -mixture_log_prob(logits, params, target_m)


def most_likely_rmse(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor) -> torch.Tensor:
    """RMSE at each step of the most likely mode's mean: (T,)."""
    logits, params, target_m = _f64(logits, params, target_m)
    best = logits.argmax(-1)
    mean = params[torch.arange(len(best)), best, :, :2]
    return ((mean - target_m) ** 2).sum(-1).mean(0).sqrt()


def sample_mixture(logits: torch.Tensor, params: torch.Tensor, samples: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Draws from each step's mixture marginal: (S, M, T, 2)."""
    logits, params = _f64(logits, params)
    modes = torch.multinomial(torch.softmax(logits, -1), samples, replacement=True, generator=generator)
    chosen = params[torch.arange(len(modes))[:, None], modes]  # (S, M, T, 5)
    z = torch.randn(*chosen.shape[:-1], 2, generator=generator, dtype=torch.float64)
    sx, sy, rho = chosen[..., 2], chosen[..., 3], chosen[..., 4]
    x = chosen[..., 0] + sx * z[..., 0]
    y = chosen[..., 1] + sy * (rho * z[..., 0] + (1.0 - rho * rho).clamp(min=0.0).sqrt() * z[..., 1])
    return torch.stack((x, y), -1)


def hdr_levels(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor, samples: int = 256,
               seed: int = 0, chunk_elements: int = 4_000_000) -> torch.Tensor:
    """Per-agent, per-step mass of the mixture denser than the truth (Monte Carlo): (S, T) in [0, 1]."""
    logits, params, target_m = _f64(logits, params, target_m)
    generator = torch.Generator().manual_seed(seed)
    s, k, t, _ = params.shape
    chunk = max(1, chunk_elements // max(samples * k * t, 1))
    levels = []
    for lo in range(0, s, chunk):
        sl = slice(lo, lo + chunk)
        draws = sample_mixture(logits[sl], params[sl], samples, generator)
        dens = mixture_log_prob(logits[sl], params[sl], draws)  # (S, M, T)
        truth = mixture_log_prob(logits[sl], params[sl], target_m[sl])  # (S, T)
        levels.append((dens > truth[:, None]).double().mean(1))
    return torch.cat(levels) if levels else torch.zeros(0, t, dtype=torch.float64)


def per_second(values: torch.Tensor, dt_s: float) -> list[float]:
    """Values at whole horizon seconds (1 s, 2 s, ...) from a per-step series (step t at (t + 1)·dt)."""
    steps = len(values)
    seconds = int(np.floor(steps * dt_s + 1e-9))
    return [float(values[int(round(sec / dt_s)) - 1]) for sec in range(1, seconds + 1)]


def compute_metrics(logits: torch.Tensor, params: torch.Tensor, target_m: torch.Tensor, dt_s: float,
                    miss_threshold_m: float = 2.0, samples: int = 256, seed: int = 0) -> dict[str, Any]:
    """All headline metrics for one forecaster; see the module docstring for the calibration method."""
    logits, params, target_m = _f64(logits, params, target_m)
    if len(target_m) == 0:
        raise ValueError("no agents with a full future to evaluate")
    ade, fde = min_ade_fde(params, target_m)
    err = displacement_errors(params, target_m)
    rmse = most_likely_rmse(logits, params, target_m)
    marginal = marginal_nll(logits, params, target_m).mean(0)
    levels = hdr_levels(logits, params, target_m, samples, seed)
    out = {"num_agents": len(target_m), "num_modes": params.shape[1], "minADE": float(ade.mean()),
           "minFDE": float(fde.mean()), "miss_rate": miss_rate(params, target_m, miss_threshold_m),
           "nll": float(trajectory_nll(logits, params, target_m).mean()), "nll_per_s": per_second(marginal, dt_s),
           "rmse_per_s": per_second(rmse, dt_s), "rmse_per_step": rmse.tolist(),
           "min_error_per_step": err.min(1).values.mean(0).tolist()}
    for level in COVERAGE_LEVELS:
        out[f"coverage_{int(round(level * 100))}"] = float((levels <= level).double().mean())
    return out
