"""Second-stage training of the biased encoder (RAP): the predictor's mixtures are fixed, only q_b learns.

Data: scene variations (RAP's didactic crossing, the highway scene), for each a pool of
``pool_samples`` unbiased joint samples from the base distribution p with their latents (mode, z),
and a few of the planner's own candidate plans with their *real* planner costs on the pool
(``CostModel``, numpy). Each step draws a risk level alpha ~ U[0, max_risk_level] per example.

Loss per example (RAP): the mean cost under q_b is pushed towards CVaR_alpha of the pool, with an
asymmetric penalty (under-estimating the risk costs ``under_weight`` times more), plus
``kl_weight`` KL(q_b || p), which keeps q_b close to the predictor's distribution. The error is
normalised by the pool's CVaR - mean gap (plus ``gap_floor``), so scenes with large and small costs
weigh alike and an unbiased q_b scores about ``under_weight``.

Gradient: the cost is the planner's numpy cost, not differentiable in torch. E_q[c] is estimated
by self-normalised importance reweighting of the fixed pool, sum_i c_i r_i / sum_i r_i with
r_i = q_b(x_i) / p(x_i); its gradient is a score-function (likelihood-ratio) estimator over the
pool, so no surrogate of the cost is needed and training optimises exactly what the planner
evaluates. The price is that q_b can only be as far from p as the pool still covers; the KL term
and the bounded encoder outputs keep it there (``ess`` in the history tracks the pool's effective
sample size under q_b).

Output directory::

    last.safetensors/.json        sampler after the latest epoch
    last_optim.safetensors/.json  optimizer state for ``resume=True``
    best.safetensors/.json        sampler with the lowest validation loss so far
    train_state.json              epoch, best value, per-epoch history, the resolved config
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from rap_planner.core.biased.checkpoint import load_optimizer, save_optimizer, sidecar_path
from rap_planner.core.biased.features import NUM_FEATURES, mixtures, mode_features
from rap_planner.core.biased.problems import TRAIN_STREAM, RiskProblem, scene_rng, scene_variation
from rap_planner.core.biased.sampler import (
    BiasedSampler,
    BiasedSamplerConfig,
    base_latents,
    kl_to_base,
    latent_log_ratio,
    log_weights,
)
from rap_planner.core.risk import CVaR

VAL_RISK_LEVELS = (0.5, 0.9, 0.95)  # fixed levels of the validation loss (comparable across epochs)


@dataclass
class TrainBiasedConfig:
    """Everything a training run depends on (read from YAML or JSON)."""

    output_dir: str = "outputs/train/biased"
    sampler: dict = field(default_factory=dict)  # BiasedSamplerConfig fields
    didactic_scenes: int = 200
    highway_scenes: int = 60
    val_fraction: float = 0.15  # of each kind's scenes, held out for validation
    plans_per_scene: int = 6
    max_agents: int = 32  # highway scenes draw 8..max_agents vehicles
    pool_samples: int = 512  # unbiased samples per scene: the CVaR reference and the reweighting pool
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    lr_decay_per_epoch: float = 0.93
    weight_decay: float = 0.0
    kl_weight: float = 0.02
    under_weight: float = 4.0  # asymmetric loss: under-estimating the risk costs this many times more
    gap_floor: float = 0.1  # cost units added to the CVaR - mean gap when normalising the error
    max_risk_level: float = 0.99
    grad_clip: float = 5.0
    seed: int = 0
    num_threads: int | None = 2
    deterministic: bool = True
    export_path: str | None = None  # where to copy the best sampler at the end (None: nowhere)

    @classmethod
    def from_source(cls, source: str | Path | dict) -> TrainBiasedConfig:
        data = source if isinstance(source, dict) else _read_config_file(Path(source))
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown biased training config keys {sorted(unknown)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the first unusable field."""
        BiasedSamplerConfig.from_dict(self.sampler)
        for name in ("plans_per_scene", "pool_samples", "epochs", "batch_size", "max_agents"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.didactic_scenes < 0 or self.highway_scenes < 0 or self.didactic_scenes + self.highway_scenes < 2:
            raise ValueError("need at least two scenes (one to train on, one to validate on)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in (0, 1)")
        if not 0.0 < self.max_risk_level < 1.0:
            raise ValueError("max_risk_level must be in (0, 1)")
        for name in ("lr", "gap_floor", "under_weight", "grad_clip", "lr_decay_per_epoch"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be positive")
        if self.kl_weight < 0.0 or self.weight_decay < 0.0:
            raise ValueError("kl_weight and weight_decay must be >= 0")


def _read_config_file(path: Path) -> dict:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: training config must be a mapping")
    return data


# ---------------------------------------------------------------------- data


@dataclass
class RiskDataset:
    """Padded tensors: per scene the pool's latents, per example (scene, plan) features and pool costs."""

    log_w: torch.Tensor  # (scenes, N, K)
    agent_mask: torch.Tensor  # (scenes, N) bool
    num_agents: np.ndarray  # (scenes,)
    modes: torch.Tensor  # (scenes, S, N) int64
    z: torch.Tensor  # (scenes, S, N, 2)
    features: torch.Tensor  # (examples, N, K, F)
    frames: torch.Tensor  # (examples, N, K, 2, 2)
    costs: np.ndarray  # (examples, S) float64 planner costs on the pool
    scene: np.ndarray  # (examples,) scene row

    def __len__(self) -> int:
        return len(self.scene)


@dataclass
class _SceneData:
    log_w: np.ndarray
    modes: np.ndarray
    z: np.ndarray
    features: list[np.ndarray]
    frames: list[np.ndarray]
    costs: list[np.ndarray]


def _choose_plans(costs: np.ndarray, problem: RiskProblem, count: int, rng: np.random.Generator) -> list[int]:
    """Keep-speed, risk-neutral best, CVaR_0.9 best, then random candidates (half of them risky ones)."""
    cvar = CVaR().risk(costs, None, 0.9)
    mean = costs.mean(axis=1)
    chosen = [problem.keep_speed_candidate(), int(np.argmin(mean)), int(np.argmin(cvar))]
    risky = np.flatnonzero(cvar - mean > 1e-3 * np.abs(cvar) + 1e-6)
    while len(chosen) < count + 3:
        pool = risky if len(risky) and rng.random() < 0.5 else np.arange(len(mean))
        chosen.append(int(rng.choice(pool)))
    return list(dict.fromkeys(chosen))[:count]


def _scene_data(kind: str, rng: np.random.Generator, cfg: TrainBiasedConfig) -> _SceneData:
    problem = RiskProblem.from_scene(scene_variation(kind, rng, cfg.max_agents))
    mix = mixtures(problem.forecasts)
    modes, z = base_latents(mix.weights, cfg.pool_samples, rng)
    costs = problem.costs(mix.positions(modes, z))
    plans = _choose_plans(costs, problem, cfg.plans_per_scene, rng)
    feats = [mode_features(mix, problem.plan_xy(c), problem.forecasts.dt_s) for c in plans]
    return _SceneData(log_weights(mix.weights), modes, z, [f for f, _ in feats], [r for _, r in feats],
                      [costs[c] for c in plans])


def build_datasets(cfg: TrainBiasedConfig, progress: bool = True) -> tuple[RiskDataset, RiskDataset]:
    """(train, validation) sets, split by scene; deterministic in ``cfg.seed``."""
    train, val = [], []
    jobs = [(kind, i, count) for kind, count in (("didactic", cfg.didactic_scenes), ("highway", cfg.highway_scenes))
            for i in range(count)]
    for kind, i, count in tqdm(jobs, desc="biased data", disable=not progress, leave=False):
        data = _scene_data(kind, scene_rng(cfg.seed, TRAIN_STREAM, kind, i), cfg)
        (val if i < max(1, round(cfg.val_fraction * count)) else train).append(data)
    if not train or not val:
        raise ValueError("the split left no training or no validation scenes; add scenes")
    return _stack(train), _stack(val)


def _stack(scenes: list[_SceneData]) -> RiskDataset:
    n_max = max(s.log_w.shape[0] for s in scenes)
    k_max = max(s.log_w.shape[1] for s in scenes)
    num_s = scenes[0].modes.shape[0]
    count = len(scenes)
    log_w = np.full((count, n_max, k_max), -1e4)
    log_w[:, :, 0] = 0.0  # padded agents: one certain mode (masked out anyway)
    mask = np.zeros((count, n_max), bool)
    modes = np.zeros((count, num_s, n_max), np.int64)
    z = np.zeros((count, num_s, n_max, 2), np.float32)
    features, frames, costs, scene = [], [], [], []
    for j, s in enumerate(scenes):
        n, k = s.log_w.shape
        log_w[j, :n, :k] = s.log_w
        mask[j, :n] = True
        modes[j, :, :n] = s.modes
        z[j, :, :n] = s.z
        for f, r, c in zip(s.features, s.frames, s.costs, strict=True):
            feat = np.zeros((n_max, k_max, NUM_FEATURES), np.float32)
            frame = np.tile(np.eye(2, dtype=np.float32), (n_max, k_max, 1, 1))
            feat[:n, :k], frame[:n, :k] = f, r
            features.append(feat)
            frames.append(frame)
            costs.append(c)
            scene.append(j)
    return RiskDataset(
        log_w=torch.from_numpy(log_w).float(), agent_mask=torch.from_numpy(mask), num_agents=mask.sum(axis=1),
        modes=torch.from_numpy(modes), z=torch.from_numpy(z), features=torch.from_numpy(np.stack(features)),
        frames=torch.from_numpy(np.stack(frames)), costs=np.stack(costs), scene=np.asarray(scene),
    )


# ---------------------------------------------------------------------- loss


def reference_cvar(costs: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """(B,) CVaR_alpha of each row of uniform-weight pool costs (B, S), as the planner computes it."""
    measure = CVaR()
    return np.array([float(measure.risk(row, None, float(a))) for row, a in zip(costs, alphas, strict=True)])


def batch_loss(sampler: BiasedSampler, data: RiskDataset, index: np.ndarray, alphas: np.ndarray,
               cfg: TrainBiasedConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean loss of examples ``index`` at risk levels ``alphas``, with diagnostics."""
    scene = data.scene[index]
    n = int(data.num_agents[scene].max())
    log_w, mask = data.log_w[scene, :n], data.agent_mask[scene, :n]
    modes, z = data.modes[scene][:, :, :n], data.z[scene][:, :, :n]
    costs = data.costs[index]
    mean = costs.mean(axis=1)
    cvar = reference_cvar(costs, alphas) - mean
    centred = torch.from_numpy(costs - mean[:, None]).float()
    params = sampler(data.features[index, :n], log_w, torch.from_numpy(alphas).float())
    log_ratio = latent_log_ratio(params, log_w, data.frames[index, :n], modes, z, mask)
    ratio = torch.softmax(log_ratio, dim=1)
    biased_mean = torch.sum(ratio * centred, dim=1)
    target = torch.from_numpy(cvar).float()
    err = (biased_mean - target) / (target + cfg.gap_floor)
    risk = torch.where(err < 0.0, cfg.under_weight, 1.0) * err**2
    kl = kl_to_base(params, log_w, mask)
    loss = torch.mean(risk + cfg.kl_weight * kl)
    ess = 1.0 / torch.sum(ratio.detach() ** 2, dim=1)
    stats = {"risk": float(risk.detach().mean()), "kl": float(kl.detach().mean()),
             "abs_err": float(err.detach().abs().mean()), "ess": float(ess.mean())}
    return loss, stats


def validate(sampler: BiasedSampler, data: RiskDataset, cfg: TrainBiasedConfig) -> dict[str, float]:
    """Loss and |relative error of E_q[c] vs CVaR| at the fixed levels ``VAL_RISK_LEVELS``."""
    sampler.eval()
    totals = {"val_loss": 0.0, "val_abs_err_95": 0.0, "val_ess": 0.0}
    count = 0
    with torch.no_grad():
        for start in range(0, len(data), cfg.batch_size):
            index = np.arange(start, min(start + cfg.batch_size, len(data)))
            for alpha in VAL_RISK_LEVELS:
                loss, stats = batch_loss(sampler, data, index, np.full(len(index), alpha), cfg)
                totals["val_loss"] += float(loss) * len(index) / len(VAL_RISK_LEVELS)
                totals["val_ess"] += stats["ess"] * len(index) / len(VAL_RISK_LEVELS)
                if alpha == 0.95:
                    totals["val_abs_err_95"] += stats["abs_err"] * len(index)
            count += len(index)
    return {k: v / count for k, v in totals.items()}


# ---------------------------------------------------------------------- loop


@contextmanager
def _torch_settings(cfg: TrainBiasedConfig) -> Iterator[None]:
    """Seed, threads and deterministic kernels for the run; restored afterwards."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.manual_seed(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.use_deterministic_algorithms(cfg.deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def train_biased(config: str | Path | dict, resume: bool = False, progress: bool = True) -> dict:
    """Train the biased encoder from a YAML/JSON config (or dict); returns the history and the file paths."""
    cfg = TrainBiasedConfig.from_source(config)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with _torch_settings(cfg):
        sampler = BiasedSampler(BiasedSamplerConfig.from_dict(cfg.sampler))
        train_set, val_set = build_datasets(cfg, progress)
        optimizer = torch.optim.Adam(sampler.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        state = _resume_state(cfg, out, sampler, optimizer) if resume else _fresh_state(cfg)
        if state["epoch"] < 0:
            state["initial"] = validate(sampler, val_set, cfg)
        for epoch in range(state["epoch"] + 1, cfg.epochs):
            stats = _train_epoch(cfg, sampler, optimizer, train_set, epoch, progress)
            record = {"epoch": epoch, **stats, **validate(sampler, val_set, cfg)}
            state["history"].append(record)
            state["epoch"] = epoch
            _save_epoch(out, sampler, optimizer, state, record, cfg)
    best = out / "best.safetensors"
    if cfg.export_path:
        exported = BiasedSampler.load(best)
        exported.save(cfg.export_path, exported.metadata)
    return {"history": state["history"], "initial": state.get("initial"), "best_val_loss": state["best_val_loss"],
            "output_dir": str(out), "best_checkpoint": str(best), "last_checkpoint": str(out / "last.safetensors"),
            "export_path": cfg.export_path, "train_examples": len(train_set), "val_examples": len(val_set),
            "seconds": time.perf_counter() - start}


def _fresh_state(cfg: TrainBiasedConfig) -> dict:
    return {"epoch": -1, "best_val_loss": math.inf, "history": [], "config": asdict(cfg)}


def _resume_state(cfg: TrainBiasedConfig, out: Path, sampler: BiasedSampler, optimizer: torch.optim.Optimizer
                  ) -> dict:
    state_path = out / "train_state.json"
    if not state_path.is_file():
        return _fresh_state(cfg)
    saved = BiasedSampler.load(out / "last.safetensors")
    if saved.config != sampler.config:
        raise ValueError(f"{out}: saved sampler config differs from the training config; refusing to resume")
    sampler.load_state_dict(saved.state_dict())
    load_optimizer(optimizer, out / "last_optim.safetensors")
    state = json.loads(state_path.read_text())
    state["best_val_loss"] = math.inf if state.get("best_val_loss") is None else float(state["best_val_loss"])
    return state


def _train_epoch(cfg: TrainBiasedConfig, sampler: BiasedSampler, optimizer: torch.optim.Optimizer,
                 data: RiskDataset, epoch: int, progress: bool) -> dict[str, float]:
    """One pass in an order and with risk levels seeded by (seed, epoch): a resumed run repeats it exactly."""
    sampler.train()
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * cfg.lr_decay_per_epoch**epoch
    rng = np.random.default_rng((cfg.seed, epoch))
    order = rng.permutation(len(data))
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    totals = {"train_loss": 0.0, "train_abs_err": 0.0, "train_kl": 0.0, "train_ess": 0.0}
    seen = 0
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
    for index in bar:
        alphas = rng.uniform(0.0, cfg.max_risk_level, len(index))
        loss, stats = batch_loss(sampler, data, index, alphas, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sampler.parameters(), cfg.grad_clip)
        optimizer.step()
        for key, value in (("train_loss", float(loss.detach())), ("train_abs_err", stats["abs_err"]),
                           ("train_kl", stats["kl"]), ("train_ess", stats["ess"])):
            totals[key] += value * len(index)
        seen += len(index)
        bar.set_postfix(loss=f"{totals['train_loss'] / seen:.3f}")
    return {k: v / len(data) for k, v in totals.items()}


def _save_epoch(out: Path, sampler: BiasedSampler, optimizer: torch.optim.Optimizer, state: dict, record: dict,
                cfg: TrainBiasedConfig) -> None:
    meta = {"epoch": record["epoch"], "val_loss": record["val_loss"], "val_abs_err_95": record["val_abs_err_95"],
            "seed": cfg.seed, "kl_weight": cfg.kl_weight, "under_weight": cfg.under_weight}
    sampler.save(out / "last.safetensors", meta)
    save_optimizer(optimizer, out / "last_optim.safetensors")
    if record["val_loss"] < state["best_val_loss"]:
        state["best_val_loss"] = record["val_loss"]
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(sidecar_path(out / "last.safetensors").with_suffix(suffix),
                            (out / "best.safetensors").with_suffix(suffix))
    best = state["best_val_loss"]
    text = json.dumps({**state, "best_val_loss": best if math.isfinite(best) else None}, indent=2)
    (out / "train_state.json").write_text(text)
