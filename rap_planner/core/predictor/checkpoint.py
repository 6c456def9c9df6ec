"""Predictor checkpoints: ``model.safetensors`` holds the weights, ``model.json`` the ``PredictorConfig`` and
free-form metadata; nothing is ever unpickled.

The file format and its checks are shared with the biased sampler in ``rap_planner.core.checkpoint_files``.
Loading builds a fresh model from the sidecar's config and checks every tensor's name, shape, dtype and
finiteness against it before anything is copied in, so a truncated, edited or hostile file fails with a
``CheckpointError`` that names the file and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rap_planner.core import checkpoint_files as files
from rap_planner.core.checkpoint_files import VERSION, CheckpointError, read_tensors, sidecar_path
from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig

FORMAT = "rap_planner.predictor"
OPTIMIZER_FORMAT = FORMAT + ".optimizer"

__all__ = ["FORMAT", "OPTIMIZER_FORMAT", "VERSION", "CheckpointError", "load_checkpoint", "load_optimizer",
           "read_sidecar", "read_tensors", "save_checkpoint", "save_optimizer", "sidecar_path"]


def save_checkpoint(model: AttentionLSTMPredictor, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically (temp file + rename)."""
    sidecar = {"format": FORMAT, "model_config": model.config.to_dict(), "metadata": metadata or {}}
    return files.write_checkpoint(path, model.state_dict(), sidecar)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The parsed, format- and version-checked JSON sidecar of a predictor checkpoint."""
    return files.read_sidecar(path, FORMAT)


def load_checkpoint(path: str | Path) -> tuple[AttentionLSTMPredictor, dict[str, Any]]:
    """Build the model described by the sidecar and load its validated weights; returns (model, metadata)."""
    sidecar = read_sidecar(path)
    try:
        config = PredictorConfig.from_dict(sidecar.get("model_config"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{sidecar_path(path)}: invalid model config ({exc})") from exc
    model = AttentionLSTMPredictor(config)
    model.load_state_dict(read_tensors(path, model.state_dict()), strict=True)
    model.eval()
    metadata = sidecar.get("metadata", {})
    return model, metadata if isinstance(metadata, dict) else {}


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> Path:
    """Optimizer state for resuming training, beside the checkpoint."""
    return files.save_optimizer(optimizer, path, OPTIMIZER_FORMAT)


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Restore ``save_optimizer``'s state into an optimizer over the same parameters, if it fits them."""
    files.load_optimizer(optimizer, path, OPTIMIZER_FORMAT)
