"""Risk-biased sampling of the predictor's mixtures (RAP, CoRL 2022), with importance weights.

A CVaR_alpha estimate from S samples of the base distribution p sees the (1 - alpha) tail only
through about (1 - alpha) S of them. The *biased encoder* (a small MLP) proposes, per agent, a
distribution q_b over the latent (mode k, standard normal z) that leans towards the risk of the
ego's plan: mode probabilities q(k) and a Gaussian N(mu, diag sigma^2) on z, expressed in the
mode's frame (along / across the relative motion at the closest approach; see ``features.py``).
Its outputs are multiplied by the risk level alpha, so alpha = 0 is exactly p.

What the planner gets is a *defensive mixture*: ``tail_fraction`` of the S samples from q_b, the
rest from p, each weighted by the balance heuristic ``p / ((S_p / S) p + (S_b / S) q_b)``
(normalised). Sampling q_b alone and weighting by p / q_b would also be consistent, but with the
weights self-normalised (as every weighted estimator here does) a q_b that sits in the tail leaves
the bulk unrepresented and the tail's weights are inflated to sum to one; the p share keeps the
bulk in the sample and bounds every weight by S / S_p.

Mode draws are stratified per component exactly as ``core/scenarios.py`` does; the normals of a
biased draw are Latin-hypercube stratified as well (each draw is still exactly N(0, I) or
N(mu, sigma) on its own, so the weights are unchanged, but the S draws spread evenly). With no
biased share (alpha = 0, or S = 1) the draws consume the random stream like ``sample_scenarios``:
the same seed gives the same samples as the planner's own unbiased sampling.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from scipy.special import ndtri
from torch import nn

from rap_planner.core.biased.checkpoint import BiasedCheckpointError, read_sidecar, read_tensors, write_checkpoint
from rap_planner.core.biased.features import NUM_FEATURES, Mixtures, mixtures, mode_features
from rap_planner.core.risk import validate_risk_level
from rap_planner.core.scenarios import systematic_modes, validate_forecasts
from rap_planner.core.types import ForecastSet
from rap_planner.paths import models_dir

FORMAT = "rap_planner.biased_sampler"
DEFAULT_SAMPLER = models_dir() / "biased_sampler.safetensors"
ABSENT_LOG_WEIGHT = -1e4  # log p(k) of padded modes: exp() is exactly 0, differences stay finite
_LogRatio = TypeVar("_LogRatio", np.ndarray, torch.Tensor)  # numpy in sampling, torch in training


@dataclass(frozen=True)
class BiasedSamplerConfig:
    """Size of the biased encoder and the bounds on how far it may move q_b from p."""

    hidden_units: int = 64
    hidden_layers: int = 2
    tail_fraction: float = 0.5  # share of the samples drawn from q_b (the rest from p)
    max_shift: float = 5.0  # |mu| per frame axis, in standard deviations of z
    max_log_scale: float = 1.5  # |log sigma| per frame axis
    max_logit_boost: float = 8.0  # |change of a mode's logit|
    stratify_normals: bool = True  # Latin-hypercube z when biased (alpha = 0 stays the planner's sampler)

    def validate(self) -> None:
        """Raise ValueError naming the first unusable field."""
        for name in ("hidden_units", "hidden_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.tail_fraction < 1.0:
            raise ValueError(f"tail_fraction must be in [0, 1), got {self.tail_fraction!r}")
        for name in ("max_shift", "max_log_scale", "max_logit_boost"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BiasedSamplerConfig:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown biased sampler config keys {sorted(unknown)}")
        config = cls(**data)
        config.validate()
        return config


@dataclass
class BiasParams:
    """q_b per (agent, mode), tensors with leading dims (..., N, K)."""

    log_q: torch.Tensor  # (..., N, K) log q(k)
    shift: torch.Tensor  # (..., N, K, 2) mean of z in the mode's frame
    log_scale: torch.Tensor  # (..., N, K, 2) log standard deviation of z in the mode's frame


def log_weights(weights: np.ndarray) -> np.ndarray:
    """log p(k) with padded (zero) modes at ``ABSENT_LOG_WEIGHT``."""
    w = np.asarray(weights, dtype=np.float64)
    return np.where(w > 0.0, np.log(np.maximum(w, 1e-300)), ABSENT_LOG_WEIGHT)


def _gather_modes(values: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
    """values (B, N, K, *rest) at modes (B, S, N) -> (B, S, N, *rest)."""
    b, s, n = modes.shape
    rest = values.shape[3:]
    expanded = values.unsqueeze(1).expand(b, s, *values.shape[1:])
    index = modes.reshape(b, s, n, 1, *([1] * len(rest))).expand(b, s, n, 1, *rest)
    return expanded.gather(3, index).squeeze(3)


def latent_log_ratio(params: BiasParams, log_w: torch.Tensor, frames: torch.Tensor, modes: torch.Tensor,
                     z: torch.Tensor, agent_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, S) log q_b(x) / p(x) of joint latents: ``modes`` (B, S, N), ``z`` (B, S, N, 2).

    ``params`` and ``log_w`` (B, N, K), ``frames`` (B, N, K, 2, 2); agents outside ``agent_mask``
    (B, N) count as unbiased (padding). The rotation into the frame has unit determinant, so the
    density ratio of z equals that of its frame coordinates.
    """
    mode_term = _gather_modes(params.log_q - log_w, modes)  # (B, S, N)
    frame = _gather_modes(frames, modes)  # (B, S, N, 2, 2)
    local = torch.einsum("bsnji,bsnj->bsni", frame, z)
    shift = _gather_modes(params.shift, modes)
    log_scale = _gather_modes(params.log_scale, modes)
    standard = (local - shift) * torch.exp(-log_scale)
    gauss_term = torch.sum(-0.5 * standard**2 - log_scale + 0.5 * local**2, dim=-1)
    per_agent = mode_term + gauss_term
    if agent_mask is not None:
        per_agent = per_agent * agent_mask[:, None, :].to(per_agent.dtype)
    return per_agent.sum(dim=-1)


def kl_to_base(params: BiasParams, log_w: torch.Tensor, agent_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) KL(q_b || p) in nats, summed over agents: mode part plus each mode's Gaussian part."""
    q = torch.exp(params.log_q)
    scale_sq = torch.exp(2.0 * params.log_scale)
    gauss = 0.5 * torch.sum(scale_sq + params.shift**2 - 1.0 - 2.0 * params.log_scale, dim=-1)
    per_agent = torch.sum(q * (params.log_q - log_w + gauss), dim=-1)  # (B, N)
    if agent_mask is not None:
        per_agent = per_agent * agent_mask.to(per_agent.dtype)
    return per_agent.sum(dim=-1)


def base_latents(weights: np.ndarray, num: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(modes (S, N), z (S, N, 2)) from p, drawn in ``sample_scenarios``' order (same seed, same draws)."""
    modes = systematic_modes(weights, num, rng)
    z = rng.standard_normal((len(weights), num, 1, 2)).transpose(1, 0, 2, 3)[:, :, 0]
    return modes.T, z


def stratified_normals(num_agents: int, num: int, rng: np.random.Generator) -> np.ndarray:
    """(S, N, 2) standard normals, Latin-hypercube stratified over the S draws per agent and axis.

    Each draw is still exactly N(0, I) on its own (so importance weights stay valid), but the S draws
    cover every 1/S probability slice of each axis once: fewer samples for the same accuracy.
    """
    slots = rng.permuted(np.tile(np.arange(num), (num_agents, 2, 1)), axis=2)  # (N, 2, S)
    u = (slots + rng.random(slots.shape)) / num
    z: np.ndarray = ndtri(u)
    return z.transpose(2, 0, 1)


def normals(num_agents: int, num: int, rng: np.random.Generator, stratify: bool) -> np.ndarray:
    """(S, N, 2) standard normals, Latin-hypercube stratified or plain."""
    if stratify:
        return stratified_normals(num_agents, num, rng)
    return rng.standard_normal((num_agents, num, 2)).transpose(1, 0, 2)


def draw_biased(params: BiasParams, frames: np.ndarray, num: int, rng: np.random.Generator,
                stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(modes (S, N), z (S, N, 2)) from q_b of one scene (``params`` with batch dim 1, frames (N, K, 2, 2))."""
    q = np.exp(params.log_q[0].double().numpy())
    num_agents = q.shape[0]
    modes = systematic_modes(q / q.sum(axis=1, keepdims=True), num, rng).T
    eps = normals(num_agents, num, rng, stratify)
    agents = np.arange(num_agents)[None, :]
    shift = params.shift[0].double().numpy()[agents, modes]
    scale = np.exp(params.log_scale[0].double().numpy()[agents, modes])
    return modes, np.einsum("snij,snj->sni", frames[agents, modes], shift + scale * eps)


def mixture_log_density(log_ratio: _LogRatio, num_base: int, num_biased: int) -> _LogRatio:
    """log m / p of the defensive mixture m = (S_p p + S_b q_b) / S, from log q_b / p; weights are p / m."""
    total = num_base + num_biased
    share_p, share_b = math.log(num_base / total), math.log(num_biased / total)
    if isinstance(log_ratio, torch.Tensor):
        return torch.logaddexp(torch.full_like(log_ratio, share_p), share_b + log_ratio)
    return np.logaddexp(share_p, share_b + log_ratio)


def joint_samples(forecasts: ForecastSet) -> tuple[np.ndarray, np.ndarray]:
    """(S, N, T, 2) positions and (S,) weights of the joint samples ``BiasedSampler.sample`` attached."""
    positions = [a.samples_m for a in forecasts.agents if a.samples_m is not None]
    if forecasts.sample_weights is None or len(positions) != len(forecasts.agents):
        raise ValueError("the forecasts do not carry joint samples for every agent")
    return np.stack(positions, axis=1), forecasts.sample_weights


class BiasedSampler(nn.Module):
    """The biased encoder: (per-mode features, alpha) -> q_b; ``sample`` draws weighted joint samples."""

    def __init__(self, config: BiasedSamplerConfig | None = None) -> None:
        super().__init__()
        self.config = config or BiasedSamplerConfig()
        self.config.validate()
        layers: list[nn.Module] = []
        width = NUM_FEATURES + 2
        for _ in range(self.config.hidden_layers):
            layers += [nn.Linear(width, self.config.hidden_units), nn.SiLU()]
            width = self.config.hidden_units
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 5)
        nn.init.zeros_(self.head.weight)  # start at q_b = p: training moves away only where it pays
        nn.init.zeros_(self.head.bias)
        self.metadata: dict[str, Any] = {}
        self.source = "untrained (q_b = p)"

    def forward(self, features: torch.Tensor, log_w: torch.Tensor, alpha: torch.Tensor) -> BiasParams:
        """q_b for ``features`` (..., N, K, F), ``log_w`` (..., N, K) and ``alpha`` (...)."""
        a = alpha.to(features.dtype).reshape(*alpha.shape, 1, 1, 1).expand(*features.shape[:-1], 1)
        tail = -torch.log1p(-a.clamp(max=0.999)) / 5.0
        out = self.head(self.body(torch.cat([features, a, tail], dim=-1)))
        cfg = self.config
        scale = a[..., 0]  # alpha = 0 gives exactly p
        logits = log_w + scale * _bounded(out[..., 0], cfg.max_logit_boost)
        shift = scale[..., None] * _bounded(out[..., 1:3], cfg.max_shift)
        log_scale = scale[..., None] * _bounded(out[..., 3:5], cfg.max_log_scale)
        return BiasParams(torch.log_softmax(logits, dim=-1), shift, log_scale)

    # ------------------------------------------------------------------ sampling

    def num_biased(self, num_samples: int, risk_level: float) -> int:
        """How many of ``num_samples`` come from q_b (none at alpha = 0; at least one from p)."""
        if risk_level <= 0.0:
            return 0
        return min(int(math.floor(self.config.tail_fraction * num_samples + 0.5)), num_samples - 1)

    def sample(self, forecasts: ForecastSet, ego_plan_xy_m: np.ndarray, risk_level: float, num_samples: int,
               seed: int) -> ForecastSet:
        """A copy of ``forecasts`` with joint samples biased towards the risk of ``ego_plan_xy_m``.

        ``ego_plan_xy_m`` (T, 2) is the ego position at the forecast's steps (step t at
        ``stamp_s + (t + 1) dt_s``). Every agent gets ``samples_m`` (S, T, 2); ``sample_weights`` (S,)
        are normalised importance weights, ``sample_risk_level`` the alpha used. The input is not modified.
        """
        alpha = validate_risk_level(risk_level)
        validate_forecasts(forecasts)
        if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        plan = np.asarray(ego_plan_xy_m, dtype=np.float64)
        if plan.shape != (forecasts.num_steps, 2) or not np.all(np.isfinite(plan)):
            raise ValueError(f"ego_plan_xy_m must be finite with shape ({forecasts.num_steps}, 2), got {plan.shape}")
        rng = np.random.default_rng(seed)
        if not forecasts.agents:
            return dataclasses.replace(forecasts, sample_weights=np.full(num_samples, 1.0 / num_samples),
                                       sample_risk_level=alpha)
        mix = mixtures(forecasts)
        num_b = self.num_biased(num_samples, alpha)
        if num_b == 0:
            modes, z = base_latents(mix.weights, num_samples, rng)
            weights = np.full(num_samples, 1.0 / num_samples)
        else:
            modes, z, weights = self._mixture_draws(mix, plan, forecasts.dt_s, alpha, num_samples, num_b, rng)
        positions = mix.positions(modes, z)
        agents = [dataclasses.replace(a, samples_m=positions[:, n]) for n, a in enumerate(forecasts.agents)]
        return dataclasses.replace(forecasts, agents=agents, sample_weights=weights, sample_risk_level=alpha)

    def bias(self, mix: Mixtures, ego_plan_xy_m: np.ndarray, dt_s: float, alpha: float
             ) -> tuple[BiasParams, np.ndarray]:
        """(q_b params for one scene with batch dim 1, frames (N, K, 2, 2)) for a plan and alpha."""
        features, frames = mode_features(mix, ego_plan_xy_m, dt_s)
        with torch.no_grad():
            params = self(torch.from_numpy(features)[None], torch.from_numpy(log_weights(mix.weights))[None].float(),
                          torch.tensor([alpha], dtype=torch.float32))
        return params, frames

    def _mixture_draws(self, mix: Mixtures, plan: np.ndarray, dt_s: float, alpha: float, num: int, num_b: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S_p draws from p then S_b from q_b, with balance-heuristic weights."""
        params, frames = self.bias(mix, plan, dt_s, alpha)
        params = _double(params)
        stratify = self.config.stratify_normals
        modes_p = systematic_modes(mix.weights, num - num_b, rng).T
        z_p = normals(mix.num_agents, num - num_b, rng, stratify)
        modes_b, z_b = draw_biased(params, frames, num_b, rng, stratify)
        modes, z = np.concatenate([modes_p, modes_b]), np.concatenate([z_p, z_b])
        log_ratio = latent_log_ratio(params, torch.from_numpy(log_weights(mix.weights))[None],
                                     torch.from_numpy(frames)[None], torch.from_numpy(modes)[None],
                                     torch.from_numpy(z)[None])[0].numpy()
        log_m = mixture_log_density(log_ratio, num - num_b, num_b)
        weights = np.exp(-log_m - np.max(-log_m))
        return modes, z, weights / weights.sum()

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Weights to ``path`` (.safetensors), config and metadata to the JSON sidecar beside it."""
        sidecar = {"format": FORMAT, "config": self.config.to_dict(), "metadata": metadata or {}}
        return write_checkpoint(path, self.state_dict(), sidecar)

    @classmethod
    def load(cls, path: str | Path) -> BiasedSampler:
        """A sampler from ``save``'s files; ``BiasedCheckpointError`` (a ValueError) when missing or invalid."""
        sidecar = read_sidecar(path, FORMAT)
        try:
            config = BiasedSamplerConfig.from_dict(sidecar.get("config"))
        except (TypeError, ValueError) as exc:
            raise BiasedCheckpointError(f"{path}: invalid sampler config ({exc})") from exc
        sampler = cls(config)
        sampler.load_state_dict(read_tensors(path, sampler.state_dict()), strict=True)
        sampler.metadata = sidecar.get("metadata", {}) if isinstance(sidecar.get("metadata"), dict) else {}
        sampler.source = str(path)
        return sampler.eval()

    @classmethod
    def default(cls) -> BiasedSampler:
        """The shipped sampler when installed, else an untrained one (q_b = p: valid, merely unbiased weights).

        ``source`` says which; a corrupt shipped file still raises.
        """
        return cls.load(DEFAULT_SAMPLER) if DEFAULT_SAMPLER.is_file() else cls().eval()


def _bounded(x: torch.Tensor, limit: float) -> torch.Tensor:
    """Smoothly clipped to (-limit, limit): the encoder can never propose an absurd q_b."""
    return limit * torch.tanh(x / limit)


def _double(params: BiasParams) -> BiasParams:
    return BiasParams(params.log_q.double(), params.shift.double(), params.log_scale.double())
