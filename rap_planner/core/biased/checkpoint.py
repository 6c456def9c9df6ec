"""safetensors + JSON sidecar files for the biased sampler and its optimizer; nothing is ever unpickled.

The format and its checks are shared with the predictor in ``rap_planner.core.checkpoint_files``; this module
names the biased optimizer's format, and ``BiasedCheckpointError`` is the shared ``CheckpointError`` so that
either name catches a missing, corrupt or foreign file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rap_planner.core import checkpoint_files as files
from rap_planner.core.checkpoint_files import (
    CheckpointError,
    read_sidecar,
    read_tensors,
    sidecar_path,
    write_checkpoint,
)

OPTIMIZER_FORMAT = "rap_planner.biased_optimizer"
BiasedCheckpointError = CheckpointError

__all__ = ["OPTIMIZER_FORMAT", "BiasedCheckpointError", "load_optimizer", "read_sidecar", "read_tensors",
           "save_optimizer", "sidecar_path", "write_checkpoint"]


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> Path:
    """Optimizer state for resuming training, beside the sampler's checkpoint."""
    return files.save_optimizer(optimizer, path, OPTIMIZER_FORMAT)


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Restore ``save_optimizer``'s state into an optimizer over the same parameters, if it fits them."""
    files.load_optimizer(optimizer, path, OPTIMIZER_FORMAT)
