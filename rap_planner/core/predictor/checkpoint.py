"""Checkpoints as safetensors + a JSON sidecar; nothing is ever unpickled.

``model.safetensors`` holds the weights, ``model.json`` the ``PredictorConfig`` and free-form
metadata. Loading checks the format tag, the config, and every tensor's name, shape, dtype and
finiteness against a freshly built model before anything is copied in, so a truncated, edited or
hostile file fails with a ``CheckpointError`` that names the file and the problem.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig

FORMAT = "rap_planner.predictor"
VERSION = 1
MAX_SIDECAR_BYTES = 16 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not match the model it claims to hold."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_checkpoint(model: AttentionLSTMPredictor, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``path`` (.safetensors) and its JSON sidecar atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sidecar = {"format": FORMAT, "version": VERSION, "model_config": model.config.to_dict(),
               "metadata": metadata or {}}
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))
    _atomic_write(sidecar_path(path), lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True)))
    return path


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def read_sidecar(path: str | Path) -> dict:
    """The parsed, format-checked JSON sidecar of a checkpoint."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{side}: checkpoint sidecar not found")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"{side}: sidecar is implausibly large")
    try:
        data = json.loads(side.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{side}: sidecar is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{side}: not a {FORMAT} checkpoint sidecar")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{side}: unsupported checkpoint version {data.get('version')!r}")
    return data


def read_tensors(path: str | Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load tensors from a safetensors file after checking names, shapes and dtypes against ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            _check_keys(path, keys, set(expected))
            for key, ref in expected.items():
                shape = tuple(f.get_slice(key).get_shape())
                if shape != tuple(ref.shape):
                    raise CheckpointError(f"{path}: tensor {key!r} has shape {shape}, expected {tuple(ref.shape)}")
            tensors = {key: f.get_tensor(key) for key in expected}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({exc})") from exc
    for key, value in tensors.items():
        if value.dtype != expected[key].dtype:
            raise CheckpointError(f"{path}: tensor {key!r} has dtype {value.dtype}, expected {expected[key].dtype}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: tensor {key!r} holds non-finite values")
    return tensors


def _check_keys(path: Path, found: set[str], expected: set[str]) -> None:
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise CheckpointError(f"{path}: tensor names do not match the model (missing {missing[:5]}, "
                              f"unexpected {extra[:5]})")


def load_checkpoint(path: str | Path) -> tuple[AttentionLSTMPredictor, dict]:
    """Build the model described by the sidecar and load its validated weights; returns (model, metadata)."""
    path = Path(path)
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
    """Optimizer state as safetensors (tensors) + JSON (hyper-parameters and scalar state)."""
    path = Path(path)
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    sidecar = {"format": FORMAT + ".optimizer", "version": VERSION, "param_groups": state["param_groups"],
               "scalars": scalars}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    _atomic_write(sidecar_path(path), lambda tmp: tmp.write_text(json.dumps(sidecar, indent=2)))
    return path


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Restore state written by ``save_optimizer`` into an optimizer over the same parameters."""
    path = Path(path)
    try:
        sidecar = json.loads(sidecar_path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{sidecar_path(path)}: unreadable optimizer sidecar ({exc})") from exc
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT + ".optimizer":
        raise CheckpointError(f"{sidecar_path(path)}: not an optimizer sidecar")
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            tensors = {key: f.get_tensor(key) for key in names}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable optimizer state ({exc})") from exc
    state: dict[int, dict] = {}
    try:
        for key, value in tensors.items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        for idx, values in sidecar.get("scalars", {}).items():
            state.setdefault(int(idx), {}).update(dict(values))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed optimizer state ({exc})") from exc
    groups = sidecar.get("param_groups")
    _check_optimizer_shapes(path, optimizer, state, groups)
    optimizer.load_state_dict({"state": dict(sorted(state.items())), "param_groups": groups})


def _check_optimizer_shapes(path: Path, optimizer: torch.optim.Optimizer, state: dict[int, dict], groups) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if not isinstance(groups, list) or sum(len(g.get("params", [])) for g in groups) != len(params):
        raise CheckpointError(f"{path}: optimizer state is for a different parameter list")
    for idx, entry in state.items():
        if not 0 <= idx < len(params):
            raise CheckpointError(f"{path}: optimizer state for unknown parameter {idx}")
        for name, value in entry.items():
            bad_shape = isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[idx].shape
            bad_scalar = isinstance(value, float) and not math.isfinite(value)
            if bad_shape or bad_scalar:
                raise CheckpointError(f"{path}: optimizer state {idx}.{name} does not fit its parameter")
