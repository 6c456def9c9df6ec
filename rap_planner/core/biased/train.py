"""Second-stage training of the biased encoder (RAP): the predictor's mixtures are fixed, only q_b learns.

Data: scene variations (RAP's didactic crossing, the highway scene), for each a pool of
``pool_samples`` unbiased joint samples from the base distribution p with their latents (mode, z),
and a few of the planner's own candidate plans with their *real* planner costs on the pool
(``CostModel``, numpy). Each step draws a risk level alpha ~ U[0, max_risk_level] per example.

Loss per example, three terms:

* RAP's risk term (``risk_weight``): the mean cost under q_b is pushed towards CVaR_alpha of the
  pool, asymmetrically (under-estimating the risk costs ``under_weight`` times more). The error is
  normalised by the pool's CVaR - mean gap (plus ``gap_floor``), so scenes with large and small
  costs weigh alike and an unbiased q_b scores about ``under_weight``.
* RAP's divergence term (``kl_weight``): KL(q_b || p), which keeps q_b close to the predictor.
* A tail cross-entropy (``tail_weight``): -E_tail[log q_b / p] over the pool's alpha-tail, i.e.
  KL(tail-conditional || q_b) up to a constant (the cross-entropy method of importance sampling).
  Matching only the mean lets q_b reach CVaR through one extreme corner of the tail (the
  mode-seeking optimum), whose weights then make the few-sample CVaR estimate *worse* than
  unbiased sampling; the mass-covering term makes q_b cover the whole tail. Measured on the
  validation scenes: with the risk and KL terms alone the 16-sample CVaR_0.95 error rose above the
  unbiased one during training; with the cross-entropy it fell to about a third of it.

Gradient: the cost is the planner's numpy cost, not differentiable in torch, so no surrogate is
used: E_q[c] is a self-normalised importance estimate over the pool *and* ``fresh_samples`` new
draws from the current q_b (balance-heuristic weights q_b / m), and its gradient flows through the
density ratio (a score-function / likelihood-ratio estimator). Training thus optimises exactly the
cost the planner evaluates. The fresh draws matter: a pool-only estimate collapses onto the few
pool samples nearest a far-moved q_b and under-reports how far it went, which drives q_b further.

The checkpoint kept as ``best`` is the one with the lowest 16-sample CVaR_0.95 estimation error on
the validation scenes (``val_cvar_err_16``), the sampler's purpose.

Output directory::

    last.safetensors/.json        sampler after the latest epoch
    last_optim.safetensors/.json  optimizer state for ``resume=True``
    best.safetensors/.json        sampler with the lowest val_cvar_err_16 so far
    train_state.json              epoch, best value, per-epoch history, the resolved config
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rap_planner.core.biased.checkpoint import load_optimizer, save_optimizer, sidecar_path
from rap_planner.core.biased.features import NUM_FEATURES, Mixtures, mixtures, mode_features
from rap_planner.core.biased.problems import TRAIN_STREAM, RiskProblem, scene_rng, scene_variation
from rap_planner.core.biased.sampler import (
    ABSENT_LOG_WEIGHT,
    BiasedSampler,
    BiasedSamplerConfig,
    BiasParams,
    base_latents,
    draw_biased,
    joint_samples,
    kl_to_base,
    latent_log_ratio,
    log_weights,
    mixture_log_density,
)
from rap_planner.core.risk import CVaR, ValueAtRisk
from rap_planner.core.scenarios import sample_scenarios
from rap_planner.core.training import read_config_file, torch_settings

VAL_RISK_LEVELS = (0.5, 0.9, 0.95)  # fixed levels of the validation loss (comparable across epochs)
SELECT_BY = "val_cvar_err_16"  # the checkpoint kept as best: the sampler's purpose, not its training loss


@dataclass
class TrainBiasedConfig:
    """Everything a training run depends on (read from YAML or JSON)."""

    output_dir: str = "outputs/train/biased"
    sampler: dict[str, Any] = field(default_factory=dict)  # BiasedSamplerConfig fields
    didactic_scenes: int = 200
    highway_scenes: int = 60
    val_fraction: float = 0.15  # of each kind's scenes, held out for validation
    plans_per_scene: int = 6
    max_agents: int = 32  # highway scenes draw 8..max_agents vehicles
    pool_samples: int = 512  # unbiased samples per scene: the CVaR reference and the reweighting pool
    fresh_samples: int = 32  # draws from the current q_b per example and step (planner cost computed for each)
    val_draws: int = 4  # repeated 16-sample draws per validation example for val_cvar_err_16
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    lr_decay_per_epoch: float = 0.93
    weight_decay: float = 0.0
    risk_weight: float = 1.0  # RAP's term: E_q[c] towards CVaR_alpha, asymmetric
    tail_weight: float = 1.0  # cross-entropy of the pool's alpha-tail under q_b (mass-covering fit)
    kl_weight: float = 0.02  # KL(q_b || p)
    under_weight: float = 4.0  # asymmetric loss: under-estimating the risk costs this many times more
    gap_floor: float = 0.1  # cost units added to the CVaR - mean gap when normalising the error
    max_risk_level: float = 0.99
    grad_clip: float = 5.0
    seed: int = 0
    num_threads: int | None = 2
    deterministic: bool = True
    export_path: str | None = None  # where to copy the best sampler at the end (None: nowhere)

    @classmethod
    def from_source(cls, source: str | Path | dict[str, Any]) -> TrainBiasedConfig:
        data = source if isinstance(source, dict) else read_config_file(Path(source))
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown biased training config keys {sorted(unknown)}")
        cfg = cls(**data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError naming the first unusable field."""
        BiasedSamplerConfig.from_dict(self.sampler)
        for name in ("plans_per_scene", "pool_samples", "fresh_samples", "epochs", "batch_size", "max_agents",
                     "val_draws"):
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
        for name in ("risk_weight", "tail_weight", "kl_weight", "weight_decay"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0")




# ---------------------------------------------------------------------- data


@dataclass
class RiskDataset:
    """Per scene the problem and its pool's latents (padded tensors), per example (scene, plan) features and costs."""

    problems: list[RiskProblem]  # per scene
    mixes: list[Mixtures]  # per scene
    log_w: torch.Tensor  # (scenes, N, K)
    agent_mask: torch.Tensor  # (scenes, N) bool
    num_agents: np.ndarray  # (scenes,)
    modes: torch.Tensor  # (scenes, S, N) int64
    z: torch.Tensor  # (scenes, S, N, 2)
    features: torch.Tensor  # (examples, N, K, F)
    frames: torch.Tensor  # (examples, N, K, 2, 2)
    costs: np.ndarray  # (examples, S) float64 planner costs on the pool
    scene: np.ndarray  # (examples,) scene row
    candidate: np.ndarray  # (examples,) candidate index in the scene's problem

    def __len__(self) -> int:
        return len(self.scene)


@dataclass
class _SceneData:
    problem: RiskProblem
    mix: Mixtures
    modes: np.ndarray
    z: np.ndarray
    plans: list[int]
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
    return _SceneData(problem, mix, modes, z, plans, [f for f, _ in feats], [r for _, r in feats],
                      [costs[c] for c in plans])


def build_datasets(cfg: TrainBiasedConfig, progress: bool = True) -> tuple[RiskDataset, RiskDataset]:
    """(train, validation) sets, split by scene; deterministic in ``cfg.seed``."""
    train: list[_SceneData] = []
    val: list[_SceneData] = []
    jobs = [(kind, i, count) for kind, count in (("didactic", cfg.didactic_scenes), ("highway", cfg.highway_scenes))
            for i in range(count)]
    for kind, i, count in tqdm(jobs, desc="biased data", disable=not progress, leave=False):
        data = _scene_data(kind, scene_rng(cfg.seed, TRAIN_STREAM, kind, i), cfg)
        (val if i < max(1, round(cfg.val_fraction * count)) else train).append(data)
    if not train or not val:
        raise ValueError("the split left no training or no validation scenes; add scenes")
    return _stack(train), _stack(val)


def _stack(scenes: list[_SceneData]) -> RiskDataset:
    n_max = max(s.mix.num_agents for s in scenes)
    k_max = max(s.mix.num_modes for s in scenes)
    num_s = scenes[0].modes.shape[0]
    count = len(scenes)
    log_w = np.full((count, n_max, k_max), ABSENT_LOG_WEIGHT)
    log_w[:, :, 0] = 0.0  # padded agents: one certain mode (masked out anyway)
    mask = np.zeros((count, n_max), bool)
    modes = np.zeros((count, num_s, n_max), np.int64)
    z = np.zeros((count, num_s, n_max, 2), np.float32)
    features, frames, costs, scene, candidate = [], [], [], [], []
    for j, s in enumerate(scenes):
        n, k = s.mix.weights.shape
        log_w[j, :n, :k] = log_weights(s.mix.weights)
        mask[j, :n] = True
        modes[j, :, :n] = s.modes
        z[j, :, :n] = s.z
        for c, f, r, cost in zip(s.plans, s.features, s.frames, s.costs, strict=True):
            feat = np.zeros((n_max, k_max, NUM_FEATURES), np.float32)
            frame = np.tile(np.eye(2), (n_max, k_max, 1, 1))
            feat[:n, :k], frame[:n, :k] = f, r
            features.append(feat)
            frames.append(frame)
            costs.append(cost)
            scene.append(j)
            candidate.append(c)
    return RiskDataset(
        problems=[s.problem for s in scenes], mixes=[s.mix for s in scenes],
        log_w=torch.from_numpy(log_w).float(), agent_mask=torch.from_numpy(mask), num_agents=mask.sum(axis=1),
        modes=torch.from_numpy(modes), z=torch.from_numpy(z), features=torch.from_numpy(np.stack(features)),
        frames=torch.from_numpy(np.stack(frames)), costs=np.stack(costs), scene=np.asarray(scene),
        candidate=np.asarray(candidate),
    )


# ---------------------------------------------------------------------- loss


def reference_cvar(costs: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """(B,) CVaR_alpha of each row of uniform-weight pool costs (B, S), as the planner computes it."""
    measure = CVaR()
    return np.array([float(measure.risk(row, None, float(a))) for row, a in zip(costs, alphas, strict=True)])


def tail_weights(costs: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """(B, S) weights of pool samples in the alpha-tail: 1 above VaR, the straddling atom's fraction at VaR.

    Normalised per row, they are the tail-conditional distribution whose mean is CVaR_alpha.
    """
    num = costs.shape[1]
    out = np.zeros_like(costs)
    for b, (row, alpha) in enumerate(zip(costs, alphas, strict=True)):
        var = float(ValueAtRisk().risk(row, None, float(alpha)))
        above, at = row > var, row == var
        share = max((1.0 - alpha) - above.sum() / num, 0.0) / max(at.sum() / num, 1e-12)
        out[b] = above + min(share, 1.0) * at
    normalised: np.ndarray = out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)
    return normalised


def _fresh_draws(sampler: BiasedSampler, data: RiskDataset, index: np.ndarray, params: BiasParams, n: int,
                 num: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(modes (B, M, n), z (B, M, n, 2), planner costs (B, M)) of ``num`` draws from each example's current q_b."""
    modes = np.zeros((len(index), num, n), np.int64)
    z = np.zeros((len(index), num, n, 2))
    costs = np.zeros((len(index), num))
    for b, e in enumerate(index):
        scene = data.scene[e]
        k = data.num_agents[scene]
        one = BiasParams(params.log_q[b:b + 1, :k].detach(), params.shift[b:b + 1, :k].detach(),
                         params.log_scale[b:b + 1, :k].detach())
        m, zz = draw_biased(one, data.frames[e, :k].double().numpy(), num, rng, sampler.config.stratify_normals)
        modes[b, :, :k], z[b, :, :k] = m, zz
        positions = data.mixes[scene].positions(m, zz)
        costs[b] = data.problems[scene].costs(positions, np.array([data.candidate[e]]))[0]
    return torch.from_numpy(modes), torch.from_numpy(z).float(), costs


def batch_loss(sampler: BiasedSampler, data: RiskDataset, index: np.ndarray, alphas: np.ndarray,
               cfg: TrainBiasedConfig, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean loss of examples ``index`` at risk levels ``alphas``, with diagnostics.

    E_q[c] is a multiple-importance estimate over the pool (from p) and ``fresh_samples`` new draws
    from the current q_b, weighted q_b / m with m their balance-heuristic mixture: the fresh draws
    keep it honest where q_b has left the pool behind (a pool-only estimate then collapses onto
    the few pool samples nearest q_b and under-reports how far q_b went).
    """
    scene = data.scene[index]
    n = int(data.num_agents[scene].max())
    log_w, mask = data.log_w[scene, :n], data.agent_mask[scene, :n]
    params = sampler(data.features[index, :n], log_w, torch.from_numpy(alphas).float())
    fresh_modes, fresh_z, fresh_costs = _fresh_draws(sampler, data, index, params, n, cfg.fresh_samples, rng)
    modes = torch.cat([data.modes[scene][:, :, :n], fresh_modes], dim=1)
    z = torch.cat([data.z[scene][:, :, :n], fresh_z], dim=1)
    pool = data.costs[index]
    mean = pool.mean(axis=1)
    target = torch.from_numpy(reference_cvar(pool, alphas) - mean).float()
    centred = torch.from_numpy(np.concatenate([pool, fresh_costs], axis=1) - mean[:, None]).float()
    log_ratio = latent_log_ratio(params, log_w, data.frames[index, :n].float(), modes, z, mask)
    log_m = mixture_log_density(log_ratio.detach(), pool.shape[1], cfg.fresh_samples)
    ratio = torch.softmax(log_ratio - log_m, dim=1)
    biased_mean = torch.sum(ratio * centred, dim=1)
    err = (biased_mean - target) / (target + cfg.gap_floor)
    risk = torch.where(err < 0.0, cfg.under_weight, 1.0) * err**2
    kl = kl_to_base(params, log_w, mask)
    tail = torch.from_numpy(tail_weights(pool, alphas)).float()
    cross_entropy = -torch.sum(tail * log_ratio[:, :pool.shape[1]], dim=1)  # KL(tail || q_b) up to a constant
    loss = torch.mean(cfg.risk_weight * risk + cfg.tail_weight * cross_entropy + cfg.kl_weight * kl)
    ess = 1.0 / torch.sum(ratio.detach() ** 2, dim=1)
    stats = {"risk": float(risk.detach().mean()), "kl": float(kl.detach().mean()),
             "tail_ce": float(cross_entropy.detach().mean()),
             "abs_err": float(err.detach().abs().mean()), "ess": float(ess.mean())}
    return loss, stats


def estimation_error(sampler: BiasedSampler | None, data: RiskDataset, num_samples: int, draws: int, seed: int,
                     risk_level: float = 0.95) -> float:
    """Mean |weighted CVaR of ``num_samples`` samples - pool CVaR| / |pool CVaR| over the examples.

    The target of the whole exercise (the pool of 512 is the reference); ``sampler=None`` measures
    the planner's unbiased scenarios instead.
    """
    measure = CVaR()
    errors = []
    for e in range(len(data)):
        problem = data.problems[data.scene[e]]
        candidate = np.array([data.candidate[e]])
        reference = float(measure.risk(data.costs[e], None, risk_level))
        plan = problem.plan_xy(int(candidate[0]))
        for r in range(draws):
            if sampler is None:
                positions, weights = sample_scenarios(problem.forecasts, num_samples, seed + r).positions_m, None
            else:
                out = sampler.sample(problem.forecasts, plan, risk_level, num_samples, seed + r)
                positions, weights = joint_samples(out)
            estimate = float(measure.risk(problem.costs(positions, candidate)[0], weights, risk_level))
            errors.append(abs(estimate - reference) / max(abs(reference), 1e-9))
    return float(np.mean(errors))


def validate(sampler: BiasedSampler, data: RiskDataset, cfg: TrainBiasedConfig) -> dict[str, float]:
    """Loss at the fixed levels ``VAL_RISK_LEVELS`` and the 16-sample CVaR_0.95 estimation error."""
    sampler.eval()
    rng = np.random.default_rng((cfg.seed, 2**31))
    totals = {"val_loss": 0.0, "val_abs_err_95": 0.0, "val_ess": 0.0}
    with torch.no_grad():
        for start in range(0, len(data), cfg.batch_size):
            index = np.arange(start, min(start + cfg.batch_size, len(data)))
            for alpha in VAL_RISK_LEVELS:
                loss, stats = batch_loss(sampler, data, index, np.full(len(index), alpha), cfg, rng)
                totals["val_loss"] += float(loss) * len(index) / len(VAL_RISK_LEVELS)
                totals["val_ess"] += stats["ess"] * len(index) / len(VAL_RISK_LEVELS)
                if alpha == 0.95:
                    totals["val_abs_err_95"] += stats["abs_err"] * len(index)
    record = {k: v / len(data) for k, v in totals.items()}
    record["val_cvar_err_16"] = estimation_error(sampler, data, 16, cfg.val_draws, cfg.seed)
    return record


# ---------------------------------------------------------------------- loop




def train_biased(config: str | Path | dict[str, Any], resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the biased encoder from a YAML/JSON config (or dict); returns the history and the file paths."""
    cfg = TrainBiasedConfig.from_source(config)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with torch_settings(cfg.seed, cfg.num_threads, cfg.deterministic):
        sampler = BiasedSampler(BiasedSamplerConfig.from_dict(cfg.sampler))
        train_set, val_set = build_datasets(cfg, progress)
        optimizer = torch.optim.Adam(sampler.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        state = _resume_state(cfg, out, sampler, optimizer) if resume else _fresh_state(cfg)
        if state["epoch"] < 0:
            state["initial"] = validate(sampler, val_set, cfg)
            state["initial"]["val_cvar_err_16_unbiased"] = estimation_error(None, val_set, 16, cfg.val_draws, cfg.seed)
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
    return {"history": state["history"], "initial": state.get("initial"), "best_val": state["best_val"],
            "selected_by": SELECT_BY, "output_dir": str(out), "best_checkpoint": str(best),
            "last_checkpoint": str(out / "last.safetensors"),
            "export_path": cfg.export_path, "train_examples": len(train_set), "val_examples": len(val_set),
            "seconds": time.perf_counter() - start}


def _fresh_state(cfg: TrainBiasedConfig) -> dict[str, Any]:
    return {"epoch": -1, "best_val": math.inf, "history": [], "config": asdict(cfg)}


def _resume_state(cfg: TrainBiasedConfig, out: Path, sampler: BiasedSampler, optimizer: torch.optim.Optimizer
                  ) -> dict[str, Any]:
    state_path = out / "train_state.json"
    if not state_path.is_file():
        return _fresh_state(cfg)
    saved = BiasedSampler.load(out / "last.safetensors")
    if saved.config != sampler.config:
        raise ValueError(f"{out}: saved sampler config differs from the training config; refusing to resume")
    sampler.load_state_dict(saved.state_dict())
    load_optimizer(optimizer, out / "last_optim.safetensors")
    state: dict[str, Any] = json.loads(state_path.read_text())
    state["best_val"] = math.inf if state.get("best_val") is None else float(state["best_val"])
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
    totals = {"train_loss": 0.0, "train_abs_err": 0.0, "train_kl": 0.0, "train_tail_ce": 0.0, "train_ess": 0.0}
    seen = 0
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
    for index in bar:
        alphas = rng.uniform(0.0, cfg.max_risk_level, len(index))
        loss, stats = batch_loss(sampler, data, index, alphas, cfg, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sampler.parameters(), cfg.grad_clip)
        optimizer.step()
        for key, value in (("train_loss", float(loss.detach())), ("train_abs_err", stats["abs_err"]),
                           ("train_kl", stats["kl"]), ("train_tail_ce", stats["tail_ce"]),
                           ("train_ess", stats["ess"])):
            totals[key] += value * len(index)
        seen += len(index)
        bar.set_postfix(loss=f"{totals['train_loss'] / seen:.3f}")
    return {k: v / len(data) for k, v in totals.items()}


def _save_epoch(out: Path, sampler: BiasedSampler, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                record: dict[str, Any], cfg: TrainBiasedConfig) -> None:
    meta = {"epoch": record["epoch"], "val_loss": record["val_loss"], "val_cvar_err_16": record["val_cvar_err_16"],
            "seed": cfg.seed, "kl_weight": cfg.kl_weight, "under_weight": cfg.under_weight}
    sampler.save(out / "last.safetensors", meta)
    save_optimizer(optimizer, out / "last_optim.safetensors")
    if record[SELECT_BY] < state["best_val"]:
        state["best_val"] = record[SELECT_BY]
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(sidecar_path(out / "last.safetensors").with_suffix(suffix),
                            (out / "best.safetensors").with_suffix(suffix))
    best = state["best_val"]
    text = json.dumps({**state, "best_val": best if math.isfinite(best) else None}, indent=2)
    (out / "train_state.json").write_text(text)
