"""Multi-head-attention LSTM forecaster after Mercat et al. (ICRA 2020).

Per-agent LSTM encoder over the position history -> multi-head self-attention across the agents of
a scene (with pairwise relative-pose features, so interactions stay rotation/translation invariant)
-> LSTM decoder (each cell emits a few steps of all K modes) -> K modes x T steps of a bivariate
Gaussian plus K mode logits per agent.

Each agent is encoded in its own frame (origin at its current position, x along its direction of
travel) and the decoder predicts per-step displacements on top of a constant-velocity prior; the
outputs are rotated back into the world frame. The frame trick is what lets one model serve
highway recordings and simulated scenes in arbitrary world orientations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rap_planner.core.predictor import geometry

MAX_WIDTH = 4096  # guards against absurd sizes in a hostile or corrupt config
MAX_STEPS = 1000


@dataclass(frozen=True)
class PredictorConfig:
    """Shape and normalisation settings; saved beside every checkpoint."""

    history_s: float = 3.0
    horizon_s: float = 5.0
    dt_s: float = 0.2
    num_modes: int = 6
    encoder_hidden: int = 64
    model_dim: int = 64
    num_heads: int = 4
    num_attention_layers: int = 1
    decoder_hidden: int = 128
    decoder_steps_per_cell: int = 5  # output steps emitted per decoder LSTM step (fewer sequential steps)
    max_agents: int = 32
    velocity_window_s: float = 0.4  # span of the velocity / heading estimate behind the prior
    sigma_min_m: float = 0.05
    rho_max: float = 0.99
    position_scale_m: float = 20.0
    velocity_scale_mps: float = 10.0

    def __post_init__(self) -> None:
        positives = ("history_s", "horizon_s", "dt_s", "sigma_min_m", "position_scale_m", "velocity_scale_mps",
                     "velocity_window_s")
        for name in positives:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"PredictorConfig.{name} must be a positive number, got {value!r}")
        sizes = ("num_modes", "encoder_hidden", "model_dim", "num_heads", "num_attention_layers", "decoder_hidden",
                 "decoder_steps_per_cell", "max_agents")
        for name in sizes:
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_WIDTH):
                raise ValueError(f"PredictorConfig.{name} must be an integer in [1, {MAX_WIDTH}], got {value!r}")
        if self.model_dim % self.num_heads:
            raise ValueError("PredictorConfig.model_dim must be divisible by num_heads")
        if not 0.0 < self.rho_max < 1.0:
            raise ValueError("PredictorConfig.rho_max must lie in (0, 1)")
        if max(self.history_steps, self.horizon_steps) > MAX_STEPS:
            raise ValueError(f"PredictorConfig: at most {MAX_STEPS} history/horizon steps")

    @property
    def history_steps(self) -> int:
        """History points including the current one."""
        return int(round(self.history_s / self.dt_s)) + 1

    @property
    def horizon_steps(self) -> int:
        return int(round(self.horizon_s / self.dt_s))

    @property
    def decoder_cells(self) -> int:
        return -(-self.horizon_steps // self.decoder_steps_per_cell)

    @property
    def velocity_window_steps(self) -> int:
        return max(1, int(round(self.velocity_window_s / self.dt_s)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> PredictorConfig:
        """Strict: unknown keys are an error (a typo must not silently fall back to a default)."""
        if not isinstance(data, dict):
            raise ValueError("predictor config must be a mapping")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown predictor config keys {sorted(unknown)}")
        return cls(**data)


@dataclass
class AgentFrames:
    """Per-agent local frames and the kinematic prior, all (B, N, ...)."""

    origin_m: torch.Tensor  # (B, N, 2) current position, world
    cos: torch.Tensor  # (B, N)
    sin: torch.Tensor  # (B, N)
    velocity_local_mps: torch.Tensor  # (B, N, 2) velocity estimate in the local frame
    valid: torch.Tensor  # (B, N) agent has at least one valid history point


class PairwiseAttention(nn.Module):
    """Multi-head self-attention across agents whose keys/values carry the pair's relative pose."""

    def __init__(self, dim: int, heads: int, pair_features: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.pair = nn.Sequential(nn.Linear(pair_features, dim), nn.ReLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pair: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x (B, N, D), pair (B, N, N, P) features of j seen from i, allowed (B, N, N) key mask."""
        b, n, d = x.shape
        h = self.heads
        pair_k, pair_v = self.pair(pair).chunk(2, dim=-1)
        q = self.query(x).view(b, n, 1, h, d // h)
        k = (self.key(x)[:, None] + pair_k).view(b, n, n, h, d // h)
        v = (self.value(x)[:, None] + pair_v).view(b, n, n, h, d // h)
        scores = (q * k).sum(-1) / math.sqrt(d // h)  # (B, N, N, H)
        scores = scores.masked_fill(~allowed[..., None], float("-inf"))
        attn = torch.softmax(scores, dim=2)
        mixed = (attn[..., None] * v).sum(2).reshape(b, n, d)
        x = self.norm1(x + self.out(mixed))
        out: torch.Tensor = self.norm2(x + self.ffn(x))
        return out


class AttentionLSTMPredictor(nn.Module):
    """Joint multi-modal forecaster for all agents of a scene; see the module docstring."""

    HISTORY_FEATURES = 5  # local x, y, local vx, vy, valid flag
    PAIR_FEATURES = 7  # relative x, y, distance, relative heading cos/sin, relative velocity x, y
    sigma_growth: torch.Tensor  # (T,) buffer registered in __init__

    def __init__(self, config: PredictorConfig | None = None) -> None:
        super().__init__()
        self.config = config or PredictorConfig()
        cfg = self.config
        dim = cfg.model_dim
        self.input_proj = nn.Linear(self.HISTORY_FEATURES, cfg.encoder_hidden)
        self.encoder = nn.LSTM(cfg.encoder_hidden, cfg.encoder_hidden, batch_first=True)
        self.embed = nn.Linear(cfg.encoder_hidden + 2, dim)
        self.attention = nn.ModuleList(
            PairwiseAttention(dim, cfg.num_heads, self.PAIR_FEATURES) for _ in range(cfg.num_attention_layers))
        self.mode_logits = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, cfg.num_modes))
        self.step_embedding = nn.Parameter(torch.randn(cfg.decoder_cells, dim) * 0.1)
        self.decoder = nn.LSTM(dim, cfg.decoder_hidden, batch_first=True)
        self.head = nn.Linear(cfg.decoder_hidden, cfg.decoder_steps_per_cell * cfg.num_modes * 5)
        with torch.no_grad():  # start close to the constant-velocity prior; small, not zero, to keep modes apart
            self.head.weight.mul_(0.1)
            self.head.bias.mul_(0.1)
        horizon_s = torch.arange(1, cfg.horizon_steps + 1, dtype=torch.float32) * cfg.dt_s
        self.register_buffer("sigma_growth", 1.0 + horizon_s, persistent=False)

    def frames(self, hist_m: torch.Tensor, mask: torch.Tensor) -> AgentFrames:
        cfg = self.config
        pos, vel = geometry.velocity_estimate(hist_m, mask, cfg.dt_s, cfg.velocity_window_steps)
        cos, sin = geometry.heading_from_history(hist_m, mask, pos, vel, cfg.dt_s, cfg.velocity_window_steps)
        vel_local = geometry.to_local(vel[..., None, :], torch.zeros_like(vel), cos, sin).squeeze(-2)
        return AgentFrames(pos, cos, sin, vel_local, mask.any(-1))

    def _encode(self, hist_m: torch.Tensor, mask: torch.Tensor, frames: AgentFrames) -> torch.Tensor:
        cfg = self.config
        b, n, steps, _ = hist_m.shape
        local = geometry.to_local(hist_m, frames.origin_m, frames.cos, frames.sin)
        local = torch.where(mask[..., None], local, torch.zeros_like(local))
        both = mask[..., 1:] & mask[..., :-1]
        vel = (local[..., 1:, :] - local[..., :-1, :]) / cfg.dt_s
        vel = torch.where(both[..., None], vel, torch.zeros_like(vel))
        vel = F.pad(vel, (0, 0, 1, 0))
        feats = torch.cat((local / cfg.position_scale_m, vel / cfg.velocity_scale_mps, mask[..., None].float()), -1)
        x = torch.relu(self.input_proj(feats.view(b * n, steps, self.HISTORY_FEATURES)))
        _, (h_n, _) = self.encoder(x)
        speed = frames.velocity_local_mps / cfg.velocity_scale_mps
        context: torch.Tensor = self.embed(torch.cat((h_n[-1].view(b, n, -1), speed), -1))
        return context

    def _pair_features(self, frames: AgentFrames) -> torch.Tensor:
        """Agent j's pose and velocity in agent i's frame: (B, N, N, 7)."""
        cfg = self.config
        cos_i, sin_i = frames.cos[..., :, None], frames.sin[..., :, None]
        rel = frames.origin_m[:, None, :, :] - frames.origin_m[:, :, None, :]
        rel_local = torch.stack((cos_i * rel[..., 0] + sin_i * rel[..., 1],
                                 -sin_i * rel[..., 0] + cos_i * rel[..., 1]), -1)
        dist = rel_local.norm(dim=-1, keepdim=True)
        cos_j, sin_j = frames.cos[..., None, :], frames.sin[..., None, :]
        rel_cos = cos_i * cos_j + sin_i * sin_j
        rel_sin = cos_i * sin_j - sin_i * cos_j
        vel_j = frames.velocity_local_mps[:, None, :, :]
        vel_in_i = torch.stack((rel_cos * vel_j[..., 0] - rel_sin * vel_j[..., 1],
                                rel_sin * vel_j[..., 0] + rel_cos * vel_j[..., 1]), -1)
        scale = cfg.position_scale_m
        return torch.cat((rel_local / scale, dist / scale, rel_cos[..., None], rel_sin[..., None],
                          vel_in_i / cfg.velocity_scale_mps), -1)

    def _decode(self, context: torch.Tensor, frames: AgentFrames) -> torch.Tensor:
        """Local-frame (μx, μy, σx, σy, ρ) for every mode and step: (B, N, K, T, 5)."""
        cfg = self.config
        b, n, d = context.shape
        k, t = cfg.num_modes, cfg.horizon_steps
        inputs = torch.relu(context.reshape(b * n, 1, d) + self.step_embedding)
        out, _ = self.decoder(inputs)  # one pass over a repeated context, not step-by-step autoregression
        raw = self.head(out).view(b, n, -1, k, 5)[:, :, :t].transpose(2, 3)
        step_m = cfg.velocity_scale_mps * cfg.dt_s
        prior = frames.velocity_local_mps[:, :, None, None, :] * cfg.dt_s
        mean = torch.cumsum(prior + raw[..., :2] * step_m, dim=-2)
        # slices are made contiguous first: softplus on a strided view is an order of magnitude slower on CPU
        sigma = F.softplus(raw[..., 2:4].contiguous()) * self.sigma_growth[:, None] + cfg.sigma_min_m
        rho = torch.tanh(raw[..., 4:5].contiguous()) * cfg.rho_max
        return torch.cat((mean, sigma, rho), -1)

    def forward_local(self, hist_m: torch.Tensor, mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, AgentFrames]:
        """Mode logits (B, N, K), local-frame params (B, N, K, T, 5) and the frames.

        Training uses this: the likelihood is evaluated in each agent's frame, where ρ is the bounded
        network output rather than a rotated, possibly near-singular one.
        """
        hist_m, mask = geometry.clean_history(hist_m, mask)
        frames = self.frames(hist_m, mask)
        x = self._encode(hist_m, mask, frames)
        n = x.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        allowed = frames.valid[:, None, :] | eye  # self-attention keeps fully-masked rows finite
        pair = self._pair_features(frames)
        for layer in self.attention:
            x = layer(x, pair, allowed)
        return self.mode_logits(x), self._decode(x, frames), frames

    def forward(self, hist_m: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World-frame outputs: logits (B, N, K) and (μx, μy, σx, σy, ρ) of shape (B, N, K, T, 5)."""
        logits, local, frames = self.forward_local(hist_m, mask)
        return logits, params_to_world(local, frames)


def params_to_world(local: torch.Tensor, frames: AgentFrames) -> torch.Tensor:
    """Rotate and translate local-frame Gaussian parameters (B, N, K, T, 5) into the world frame."""
    cos = frames.cos[:, :, None, None]
    sin = frames.sin[:, :, None, None]
    mean = geometry.rotate(local[..., :2], cos, sin) + frames.origin_m[:, :, None, None, :]
    sigma, rho = geometry.covariance_params_to_world(local[..., 2:4], local[..., 4], cos, sin)
    return torch.cat((mean, sigma, rho[..., None]), -1)


def targets_to_local(target_m: torch.Tensor, frames: AgentFrames) -> torch.Tensor:
    """World future positions (B, N, T, 2) into each agent's frame, matching ``forward_local``."""
    return geometry.to_local(target_m, frames.origin_m, frames.cos, frames.sin)
