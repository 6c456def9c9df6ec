"""Training loop: windows from track tables, mixture NLL (+ winner-take-all), per-epoch validation.

Output directory layout::

    last.safetensors/.json        model after the latest epoch
    last_optim.safetensors/.json  optimizer state for ``resume=True``
    best.safetensors/.json        model with the lowest validation NLL so far
    train_state.json              epoch, best value, per-epoch history, the resolved config

Every epoch's shuffle uses a generator seeded from (seed, epoch), so a resumed run sees exactly the
batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rap_planner.core.predictor.checkpoint import load_checkpoint, load_optimizer, save_checkpoint, save_optimizer
from rap_planner.core.predictor.dataset import WindowSet, load_windows
from rap_planner.core.predictor.loss import mixture_nll
from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig, targets_to_local
from rap_planner.core.training import read_config_file, torch_settings


@dataclass
class TrainConfig:
    """Everything a training run depends on (read from YAML or JSON)."""

    train_data: list[str]
    output_dir: str
    val_data: list[str] = field(default_factory=list)  # empty: validate on the "val" scenes of train_data
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    lr: float = 1e-3
    lr_decay_per_epoch: float = 1.0  # lr of epoch e is lr * lr_decay_per_epoch ** e
    weight_decay: float = 0.0
    batch_size: int = 32
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    sample_every_s: float = 1.0
    wta_weight: float = 0.5
    grad_clip: float = 5.0
    max_batches_per_epoch: int | None = None
    num_threads: int | None = None
    deterministic: bool = True

    @classmethod
    def from_source(cls, source: str | Path | dict[str, Any]) -> TrainConfig:
        data = source if isinstance(source, dict) else read_config_file(Path(source))
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}")
        data = dict(data)
        for key in ("train_data", "val_data"):
            if isinstance(data.get(key), (str, Path)):
                data[key] = [data[key]]
            data[key] = [str(p) for p in data.get(key, [])]
        data["split_fractions"] = tuple(data.get("split_fractions", cls.split_fractions))
        return cls(**data)

    @property
    def predictor(self) -> PredictorConfig:
        return PredictorConfig.from_dict(self.model)






def batch_loss(model: AttentionLSTMPredictor, windows: WindowSet, indices: np.ndarray,
               wta_weight: float) -> tuple[torch.Tensor, int]:
    """Loss of one batch, evaluated in each agent's local frame; also returns the observed step count."""
    batch = windows.batch(indices)
    logits, local, frames = model.forward_local(batch.hist_m, batch.hist_mask)
    target = targets_to_local(batch.fut_m, frames)
    mask = batch.fut_mask & batch.agent_mask[..., None] & batch.hist_mask.any(-1)[..., None]
    loss = mixture_nll(logits, local, target, mask, wta_weight=wta_weight)
    return loss, int(mask.sum())


def validate(model: AttentionLSTMPredictor, windows: WindowSet, batch_size: int) -> dict[str, float]:
    """Per-step mixture NLL and min-over-modes ADE/FDE (agents with a full future) on a window set."""
    model.eval()
    nll_sum, steps, ade, fde, agents = 0.0, 0, 0.0, 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            idx = np.arange(start, min(start + batch_size, len(windows)))
            loss, n = batch_loss(model, windows, idx, 0.0)
            nll_sum += float(loss) * n
            steps += n
            batch = windows.batch(idx)
            _, params = model(batch.hist_m, batch.hist_mask)
            full = batch.fut_mask.all(-1) & batch.agent_mask
            err = (params[..., :2] - batch.fut_m[:, :, None]).norm(dim=-1)[full]  # (A, K, T)
            ade += float(err.mean(-1).min(-1).values.sum())
            fde += float(err[..., -1].min(-1).values.sum())
            agents += int(full.sum())
    return {"val_nll": nll_sum / max(steps, 1), "val_minADE": ade / max(agents, 1),
            "val_minFDE": fde / max(agents, 1)}


def train(config: str | Path | dict[str, Any], resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train from a YAML/JSON config (or dict); returns the history and the checkpoint paths.

    ``train_data``/``val_data`` are lists of track-table ``.npz`` files or directories of them.
    """
    cfg = TrainConfig.from_source(config)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch_settings(cfg.seed, cfg.num_threads, cfg.deterministic):
        train_set, val_set = _load_data(cfg)
        if len(train_set) == 0:
            raise ValueError("no training windows: check train_data, the split and the history/horizon lengths")
        if len(val_set) == 0:
            tqdm.write("warning: no validation windows; validating on the training windows")
            val_set = train_set
        model = AttentionLSTMPredictor(cfg.predictor)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        state = _resume_state(cfg, out, model, optimizer) if resume else _fresh_state(cfg)
        for epoch in range(state["epoch"] + 1, cfg.epochs):
            train_loss = _train_epoch(cfg, model, optimizer, train_set, epoch, progress)
            record = {"epoch": epoch, "train_loss": train_loss, **validate(model, val_set, cfg.batch_size)}
            state["history"].append(record)
            state["epoch"] = epoch
            _save_epoch(cfg, out, model, optimizer, state, record)
    return {"history": state["history"], "best_val_nll": state["best_val_nll"], "output_dir": str(out),
            "best_checkpoint": str(out / "best.safetensors"), "last_checkpoint": str(out / "last.safetensors"),
            "train_windows": len(train_set), "val_windows": len(val_set)}


def _load_data(cfg: TrainConfig) -> tuple[WindowSet, WindowSet]:
    pc = cfg.predictor
    common: dict[str, Any] = {"fractions": cfg.split_fractions, "seed": cfg.seed, "sample_every_s": cfg.sample_every_s}
    if cfg.val_data:
        return (load_windows(cfg.train_data, pc, "all", **common), load_windows(cfg.val_data, pc, "all", **common))
    return load_windows(cfg.train_data, pc, "train", **common), load_windows(cfg.train_data, pc, "val", **common)


def _fresh_state(cfg: TrainConfig) -> dict[str, Any]:
    return {"epoch": -1, "best_val_nll": math.inf, "history": [], "config": _jsonable(cfg)}


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    data = asdict(cfg)
    data["split_fractions"] = list(cfg.split_fractions)
    return data


def _resume_state(cfg: TrainConfig, out: Path, model: AttentionLSTMPredictor, optimizer: torch.optim.Optimizer
                  ) -> dict[str, Any]:
    state_path = out / "train_state.json"
    if not state_path.is_file():
        return _fresh_state(cfg)
    saved, _ = load_checkpoint(out / "last.safetensors")
    if saved.config != model.config:
        raise ValueError(f"{out}: saved model config differs from the training config; refusing to resume")
    model.load_state_dict(saved.state_dict())
    load_optimizer(optimizer, out / "last_optim.safetensors")
    state: dict[str, Any] = json.loads(state_path.read_text())
    state["best_val_nll"] = float(state["best_val_nll"]) if state["best_val_nll"] is not None else math.inf
    return state


def _train_epoch(cfg: TrainConfig, model: AttentionLSTMPredictor, optimizer: torch.optim.Optimizer,
                 windows: WindowSet, epoch: int, progress: bool) -> float:
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = cfg.lr * cfg.lr_decay_per_epoch ** epoch
    generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(len(windows), generator=generator).numpy()
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    batches = batches[:cfg.max_batches_per_epoch] if cfg.max_batches_per_epoch else batches
    total, count = 0.0, 0
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
    for idx in bar:
        loss, _ = batch_loss(model, windows, idx, cfg.wta_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        total += float(loss.detach())
        count += 1
        bar.set_postfix(loss=f"{total / count:.3f}")
    return total / max(count, 1)


def _save_epoch(cfg: TrainConfig, out: Path, model: AttentionLSTMPredictor, optimizer: torch.optim.Optimizer,
                state: dict[str, Any], record: dict[str, Any]) -> None:
    meta = {"epoch": record["epoch"], "val_nll": record["val_nll"], "val_minADE": record["val_minADE"],
            "val_minFDE": record["val_minFDE"], "split_seed": cfg.seed, "split_fractions": list(cfg.split_fractions),
            "train_data": cfg.train_data, "val_data": cfg.val_data, "sample_every_s": cfg.sample_every_s}
    save_checkpoint(model, out / "last.safetensors", meta)
    save_optimizer(optimizer, out / "last_optim.safetensors")
    if record["val_nll"] < state["best_val_nll"]:
        state["best_val_nll"] = record["val_nll"]
        save_checkpoint(model, out / "best.safetensors", meta)
    best = state["best_val_nll"]
    (out / "train_state.json").write_text(json.dumps({**state, "best_val_nll": best if math.isfinite(best) else None},
                                                     indent=2))
