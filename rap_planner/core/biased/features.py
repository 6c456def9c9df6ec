"""What the biased encoder sees: per (agent, mode) features of the forecast relative to the ego plan.

The latent of one agent is (mode k, z), the sample being ``mean_k + L_k z`` with ``L_k`` the per-step
Cholesky factor (as ``core/scenarios.py`` draws it). In z space the ego plan is the curve
``w(t) = L_t^-1 (ego_t - mean_t)``: z = w(t) puts the agent on the ego at step t. The encoder shifts
z, so it is told where that curve passes closest to the origin (the Mahalanobis-closest step t*),
in the mode's *frame*: e1 along the curve (the whitened relative velocity; moving z along it changes
*when* the agent is where the ego will be), e2 across it (the miss distance). That frame stays
well defined when the mode mean runs straight through the ego (w(t*) = 0); without relative motion
e2 points at w(t*). Every feature is a distance, time, speed, size or probability, so nothing
depends on the world frame's orientation. Two scene features (total and share of nearby
probability mass) tell the encoder whether an agent's risk is one of many.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rap_planner.core.array_types import FloatArray
from rap_planner.core.scenarios import cholesky_2x2
from rap_planner.core.types import ForecastSet

NUM_FEATURES = 16
_MIN_STD_M = 1e-3  # Cholesky diagonals below this are clamped when whitening (a near-degenerate spread)
_LOG_WEIGHT_FLOOR = -14.0  # log of mode weights, clipped (a 1e-6 mode is as good as absent)
_SPEED_SCALE_MPS = 10.0
_DISTANCE_SCALE_M = 1.0
_STILL_WHITE_PER_S = 0.05  # whitened relative speed below which the frame falls back to w(t*)
EGO_SIZE_M = (4.5, 1.8)  # length, width assumed for the ego (the EgoState default)


@dataclass
class Mixtures:
    """Every agent's Gaussian mixture, zero-padded to K modes: what the latent (k, z) maps through."""

    weights: FloatArray  # (N, K) mode probabilities, 0 for padding
    means_m: FloatArray  # (N, K, T, 2)
    chol_m: FloatArray  # (N, K, T, 2, 2) lower Cholesky factors of the covariances
    lengths_m: FloatArray  # (N,)
    widths_m: FloatArray  # (N,)

    @property
    def num_agents(self) -> int:
        return int(self.weights.shape[0])

    @property
    def num_modes(self) -> int:
        return int(self.weights.shape[1])

    def positions(self, modes: np.ndarray, z: np.ndarray) -> FloatArray:
        """(S, N, T, 2) trajectories of latents: ``modes`` (S, N) indices, ``z`` (S, N, 2) normals.

        The same arithmetic as the scenario sampler: mean + L z with the three Cholesky entries.
        """
        num_s, num_n = modes.shape
        steps = self.means_m.shape[2]
        factors = np.stack([self.chol_m[..., 0, 0], self.chol_m[..., 1, 0], self.chol_m[..., 1, 1]], axis=-1)
        flat = (np.arange(num_n)[None, :] * self.num_modes + modes).reshape(-1)
        mean = np.take(self.means_m.reshape(-1, steps, 2), flat, axis=0).reshape(num_s, num_n, steps, 2)
        fac = np.take(factors.reshape(-1, steps, 3), flat, axis=0).reshape(num_s, num_n, steps, 3)
        z0, z1 = z[:, :, None, 0], z[:, :, None, 1]
        out: FloatArray = np.empty_like(mean)
        out[..., 0] = mean[..., 0] + fac[..., 0] * z0
        out[..., 1] = mean[..., 1] + fac[..., 1] * z0 + fac[..., 2] * z1
        return out


def mixtures(forecasts: ForecastSet) -> Mixtures:
    """Zero-padded mixture arrays of a forecast set (weights normalised, as the scenario sampler uses them)."""
    agents = forecasts.agents
    steps = forecasts.num_steps
    num_modes = max((len(a.weights) for a in agents), default=1)
    weights = np.zeros((len(agents), num_modes))
    means = np.zeros((len(agents), num_modes, steps, 2))
    covs = np.zeros((len(agents), num_modes, steps, 2, 2))
    for n, agent in enumerate(agents):
        k = len(agent.weights)
        weights[n, :k] = agent.weights
        means[n, :k] = agent.means_m
        covs[n, :k] = agent.covariances_m2
    return Mixtures(weights=weights, means_m=means, chol_m=cholesky_2x2(covs),
                    lengths_m=np.array([a.length_m for a in agents], dtype=np.float64),
                    widths_m=np.array([a.width_m for a in agents], dtype=np.float64))


def _whiten(chol: FloatArray, vec: FloatArray) -> FloatArray:
    """Solve L w = vec for (..., 2, 2) lower-triangular L and (..., 2) vec."""
    l11 = np.maximum(chol[..., 0, 0], _MIN_STD_M)
    l22 = np.maximum(chol[..., 1, 1], _MIN_STD_M)
    w0 = vec[..., 0] / l11
    w1 = (vec[..., 1] - chol[..., 1, 0] * w0) / l22
    return np.stack([w0, w1], axis=-1)


def _velocity(xy: FloatArray, dt_s: float) -> FloatArray:
    if xy.shape[-2] < 2:
        return np.zeros_like(xy)
    velocity: FloatArray = np.gradient(xy, dt_s, axis=-2)
    return velocity


def _signed_log(x: FloatArray) -> FloatArray:
    return np.sign(x) * np.log1p(np.abs(x))


def _at(values: FloatArray, step: np.ndarray) -> FloatArray:
    """values (N, K, T, ...) at per-(agent, mode) steps (N, K) -> (N, K, ...)."""
    n, k = np.meshgrid(np.arange(values.shape[0]), np.arange(values.shape[1]), indexing="ij")
    picked: FloatArray = values[n, k, step]
    return picked


def _frames(white_star: np.ndarray, v_white: np.ndarray) -> np.ndarray:
    """(N, K, 2, 2) frames with columns e1 (along the relative motion) and e2 (across it)."""
    speed = np.linalg.norm(v_white, axis=-1, keepdims=True)
    norm = np.linalg.norm(white_star, axis=-1, keepdims=True)
    towards = np.where(norm > 1e-9, white_star / np.maximum(norm, 1e-9), np.array([0.0, 1.0]))
    fallback = np.stack([towards[..., 1], -towards[..., 0]], axis=-1)  # e2 = rot90(e1) = towards
    e1 = np.where(speed > _STILL_WHITE_PER_S, v_white / np.maximum(speed, 1e-9), fallback)
    e2 = np.stack([-e1[..., 1], e1[..., 0]], axis=-1)
    return np.stack([e1, e2], axis=-1)


def mode_features(mix: Mixtures, ego_plan_xy_m: np.ndarray, dt_s: float,
                  ego_size_m: tuple[float, float] = EGO_SIZE_M) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, K, NUM_FEATURES), frames (N, K, 2, 2)) of every mode against the ego plan.

    A latent shift s in the frame is ``z = frames @ s``. Padded modes get zero features and the
    identity frame.
    """
    ego = np.asarray(ego_plan_xy_m, dtype=np.float64)
    steps = mix.means_m.shape[2]
    if ego.shape != (steps, 2) or not np.all(np.isfinite(ego)):
        raise ValueError(f"ego_plan_xy_m must be finite with shape ({steps}, 2), got {ego.shape}")
    horizon_s = steps * dt_s
    rel = ego[None, None] - mix.means_m  # (N, K, T, 2)
    dist = np.linalg.norm(rel, axis=-1)
    white = _whiten(mix.chol_m, rel)
    maha = np.linalg.norm(white, axis=-1)
    t_dist, t_maha = np.argmin(dist, axis=-1), np.argmin(maha, axis=-1)
    chol_star = _at(mix.chol_m, t_maha)
    white_star = _at(white, t_maha)
    v_star = _at(_velocity(ego, dt_s)[None, None] - _velocity(mix.means_m, dt_s), t_maha)
    v_white = _whiten(chol_star, v_star)  # d w / dt, ignoring the spread's own growth
    frames = _frames(white_star, v_white)
    along = np.sum(white_star * frames[..., 0], axis=-1)
    across = np.sum(white_star * frames[..., 1], axis=-1)
    std_star = np.maximum(np.sqrt(0.5 * np.sum(chol_star**2, axis=(-2, -1))), _MIN_STD_M)
    reach_len = 0.5 * (mix.lengths_m[:, None] + ego_size_m[0]) / std_star
    reach_wid = 0.5 * (mix.widths_m[:, None] + ego_size_m[1]) / std_star
    m_min = np.min(maha, axis=-1)
    weights = mix.weights
    nearby = np.sum(weights * np.exp(-0.5 * np.maximum(m_min - 0.5 * (reach_len + reach_wid), 0.0) ** 2), axis=-1)
    total = np.sum(nearby)
    features = np.stack([
        np.maximum(np.log(np.maximum(weights, 1e-300)), _LOG_WEIGHT_FLOOR) / -_LOG_WEIGHT_FLOOR,
        weights,
        np.log1p(np.min(dist, axis=-1) / _DISTANCE_SCALE_M),
        (t_dist + 1) * dt_s / horizon_s,
        np.log1p(m_min),
        (t_maha + 1) * dt_s / horizon_s,
        _signed_log(along),
        _signed_log(across),
        np.log1p(np.linalg.norm(v_white, axis=-1)),
        np.linalg.norm(v_star, axis=-1) / _SPEED_SCALE_MPS,
        np.log(std_star),
        np.log1p(_at(maha, t_dist)),
        np.log1p(reach_len),
        np.log1p(reach_wid),
        np.broadcast_to((nearby / max(total, 1e-12))[:, None], weights.shape),
        np.full(weights.shape, np.log1p(total)),
    ], axis=-1)
    present = weights > 0.0
    features = np.where(present[..., None], features, 0.0)
    frames = np.where(present[..., None, None], frames, np.eye(2))
    return features.astype(np.float32), frames
