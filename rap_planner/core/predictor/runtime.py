"""Inference wrapper the ROS node uses: numpy histories in, ``AgentForecast`` mixtures out (world frame)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rap_planner.core.history import HistoryWindow
from rap_planner.core.predictor.baselines import KinematicConfig, constant_velocity
from rap_planner.core.predictor.checkpoint import load_checkpoint
from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig
from rap_planner.core.types import AgentForecast, ForecastSet

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "predictor_default.safetensors"
DEFAULT_SIZE_M = (4.5, 1.8)  # length, width when the caller gives none


class ForecastModel:
    """A learned predictor, or the constant-velocity fallback with the same interface.

    Histories are (H_i, 2) world positions, oldest first, the last row at the prediction stamp, spaced
    ``dt_s`` apart (or ``history_dt_s`` when given: they are then interpolated onto the model grid).
    NaN rows are treated as missing. At most ``max_agents`` agents (default: the config's; those
    nearest ``centre_m``) go through the learned model; the rest get constant-velocity forecasts, so
    every agent is covered. Attention cost grows with the square of that cap.
    """

    def __init__(self, model: AttentionLSTMPredictor | None, config: PredictorConfig, source: str,
                 max_agents: int | None = None) -> None:
        self.model = model.eval() if model is not None else None
        self.config = config
        self.source = source
        self.max_agents = max_agents or config.max_agents
        self.kinematic = KinematicConfig(dt_s=config.dt_s, horizon_steps=config.horizon_steps,
                                         velocity_window_steps=config.velocity_window_steps)

    @classmethod
    def load(cls, path: str | Path, max_agents: int | None = None) -> ForecastModel:
        """Load a checkpoint; raises ``CheckpointError`` when it is missing or invalid."""
        model, _ = load_checkpoint(path)
        return cls(model, model.config, str(path), max_agents)

    @classmethod
    def default(cls, max_agents: int | None = None) -> ForecastModel:
        """The shipped weights when installed, else constant velocity (a corrupt shipped file still raises)."""
        if DEFAULT_WEIGHTS.is_file():
            return cls.load(DEFAULT_WEIGHTS, max_agents)
        return cls.constant_velocity()

    @classmethod
    def constant_velocity(cls, config: PredictorConfig | None = None) -> ForecastModel:
        return cls(None, config or PredictorConfig(), "constant_velocity")

    @property
    def is_learned(self) -> bool:
        return self.model is not None

    @property
    def dt_s(self) -> float:
        return self.config.dt_s

    @property
    def num_steps(self) -> int:
        return self.config.horizon_steps

    def predict(self, histories: Mapping[int, np.ndarray] | HistoryWindow,
                sizes_m: Mapping[int, tuple[float, float]] | None = None, centre_m: np.ndarray | None = None,
                history_dt_s: float | None = None) -> list[AgentForecast]:
        """Forecast every agent, in input order; ``sizes_m`` maps id -> (length, width) for the forecasts.

        ``histories`` maps id -> (H_i, 2) array, or is a buffer's ``HistoryWindow`` on the model's ``dt_s``
        grid: already stacked and sized (``sizes_m`` and ``history_dt_s`` are for mappings), it skips the
        per-agent work that dominated at a few hundred agents.
        Agents without a single finite position are left out (there is nothing to extrapolate).
        """
        if isinstance(histories, HistoryWindow):
            return self._predict_stacked(histories.agent_ids, histories.positions_m, histories.mask,
                                         histories.sizes_m, centre_m)
        ids = list(histories)
        hist = self._stack([histories[i] for i in ids], history_dt_s)
        sizes_m = sizes_m or {}
        sizes = np.array([sizes_m.get(i, DEFAULT_SIZE_M) for i in ids], dtype=np.float64).reshape(-1, 2)
        return self._predict_stacked(ids, hist, np.isfinite(hist).all(-1), sizes, centre_m)

    def predict_set(self, histories: Mapping[int, np.ndarray] | HistoryWindow, stamp_s: float,
                    **kwargs: Any) -> ForecastSet:
        agents = self.predict(histories, **kwargs)
        return ForecastSet(stamp_s=stamp_s, dt_s=self.dt_s, num_steps=self.num_steps, agents=agents)

    def _predict_stacked(self, agent_ids: Sequence[int] | np.ndarray, histories_m: np.ndarray, mask: np.ndarray,
                         sizes_m: np.ndarray, centre_m: np.ndarray | None) -> list[AgentForecast]:
        """(N, H, 2) histories and (N, H) mask ending at the prediction stamp (any H: right-aligned to the
        model's), (N, 2) sizes -> forecasts of the agents with a valid point."""
        hist, mask = self._right_align(histories_m, mask)
        present = np.flatnonzero(mask.any(-1))
        hist, mask = hist[present], mask[present]
        learned = self._learned_subset(hist, mask, centre_m)
        kinematic = np.setdiff1d(np.arange(len(present)), learned, assume_unique=True)
        mixtures: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for rows, run in ((learned, self._run_model), (kinematic, self._run_cv)):
            if len(rows):
                mixtures.update(zip(rows.tolist(), zip(*run(hist[rows], mask[rows]), strict=True), strict=True))
        forecasts = []
        for j, n in enumerate(present.tolist()):
            weights, means, covs = mixtures[j]
            forecasts.append(AgentForecast(agent_id=int(agent_ids[n]), weights=weights, means_m=means,
                                           covariances_m2=covs, length_m=float(sizes_m[n, 0]),
                                           width_m=float(sizes_m[n, 1])))
        return forecasts

    def _stack(self, arrays: list[np.ndarray], history_dt_s: float | None) -> np.ndarray:
        """Right-align histories into (N, H, 2) float64, NaN where missing."""
        h = self.config.history_steps
        hist = np.full((len(arrays), h, 2), np.nan)
        for j, arr in enumerate(arrays):
            arr = np.asarray(arr, dtype=np.float64).reshape(-1, 2)
            if history_dt_s is not None and abs(history_dt_s - self.dt_s) > 1e-9:
                arr = _regrid(arr, history_dt_s, self.dt_s, h)
            arr = arr[-h:]
            hist[j, h - len(arr):] = arr
        return hist

    def _right_align(self, hist: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, 2) and (N, H) -> the model's history length, newest last; missing points zeroed and masked."""
        h = self.config.history_steps
        hist, mask = np.asarray(hist, dtype=np.float64)[:, -h:], np.asarray(mask, dtype=bool)[:, -h:]
        pad = h - hist.shape[1]
        if pad:
            hist, mask = np.pad(hist, ((0, 0), (pad, 0), (0, 0))), np.pad(mask, ((0, 0), (pad, 0)))
        mask = mask & np.isfinite(hist).all(-1)
        return np.where(mask[..., None], hist, 0.0), mask

    def _learned_subset(self, hist: np.ndarray, mask: np.ndarray, centre_m: np.ndarray | None) -> np.ndarray:
        if self.model is None:
            return np.zeros(0, np.int64)
        if len(hist) <= self.max_agents:
            return np.arange(len(hist))
        last = _last_positions(hist, mask)
        centre = np.mean(last, axis=0) if centre_m is None else np.asarray(centre_m, dtype=np.float64)[:2]
        order = np.argsort(np.hypot(*(last - centre).T), kind="stable")
        return np.sort(order[:self.max_agents])

    def _run_model(self, hist: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self.model is not None, "only agents _learned_subset picked reach the model"
        origin = _origin(hist, mask)
        rel = torch.from_numpy(np.where(mask[..., None], hist - origin, 0.0).astype(np.float32))[None]
        with torch.inference_mode():
            logits, params = self.model(rel, torch.from_numpy(mask)[None])
        return _to_mixture(logits[0].double().numpy(), params[0].double().numpy(), origin)

    def _run_cv(self, hist: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        origin = _origin(hist, mask)
        rel = torch.from_numpy(np.where(mask[..., None], hist - origin, 0.0))[None]
        with torch.inference_mode():
            logits, params = constant_velocity(rel, torch.from_numpy(mask)[None], self.kinematic)
        return _to_mixture(logits[0].numpy(), params[0].numpy(), origin)


def _last_positions(hist: np.ndarray, mask: np.ndarray) -> np.ndarray:
    steps = hist.shape[1]
    last = steps - 1 - np.argmax(mask[:, ::-1], axis=1)
    positions: np.ndarray = hist[np.arange(len(hist)), last]
    return positions


def _origin(hist: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean current position of the present agents: the float64 offset that keeps float32 inputs small."""
    present = mask.any(-1)
    return _last_positions(hist[present], mask[present]).mean(axis=0) if present.any() else np.zeros(2)


def _regrid(arr: np.ndarray, from_dt_s: float, to_dt_s: float, steps: int) -> np.ndarray:
    """Interpolate a history sampled every ``from_dt_s`` onto the model grid ending at the same instant."""
    ok = np.isfinite(arr).all(-1)
    t_s = (np.arange(len(arr)) - (len(arr) - 1)) * from_dt_s
    if ok.sum() < 2:
        return arr[-1:]
    t_s, arr = t_s[ok], arr[ok]
    grid_s = -np.arange(steps - 1, -1, -1) * to_dt_s
    grid_s = grid_s[grid_s >= t_s[0] - 1e-9]
    out = np.stack([np.interp(grid_s, t_s, arr[:, c]) for c in range(2)], -1)
    if t_s[-1] < -1e-9:  # the newest point is missing: do not pretend it is current
        out[grid_s > t_s[-1] + 1e-9] = np.nan
    return out


def _to_mixture(logits: np.ndarray, params: np.ndarray, origin: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, K) logits and (N, K, T, 5) params -> weights (N, K), means (N, K, T, 2), covariances (N, K, T, 2, 2)."""
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    means = params[..., :2] + origin
    sx, sy, rho = params[..., 2], params[..., 3], params[..., 4]
    covs = np.empty(params.shape[:-1] + (2, 2))
    covs[..., 0, 0] = sx * sx
    covs[..., 1, 1] = sy * sy
    covs[..., 0, 1] = covs[..., 1, 0] = rho * sx * sy
    return weights, means, covs

