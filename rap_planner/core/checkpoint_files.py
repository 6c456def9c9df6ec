"""safetensors + JSON-sidecar files for models and optimizers; nothing is ever unpickled.

Tensors live in ``name.safetensors``, everything else in a size-limited ``name.json`` sidecar whose
format tag and version are checked. Every tensor's name, shape, dtype and finiteness is checked
before it is used, so a truncated, edited, foreign or hostile file fails with a ``CheckpointError``
that names the file and the problem. The predictor and the biased sampler share this format, each
with its own format tags.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

VERSION = 1
MAX_SIDECAR_BYTES = 4 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or does not match what it should hold."""


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar that belongs to a ``.safetensors`` file."""
    return Path(path).with_suffix(".json")


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a temp file and rename it, so a crash never leaves a half-written file under ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], sidecar: dict[str, Any]) -> Path:
    """Write ``path`` (safetensors) and its JSON sidecar, each atomically.

    ``sidecar`` must hold its ``"format"``, which also tags the safetensors file; the version is added. Keys are
    sorted, so re-saving a loaded checkpoint reproduces its files byte for byte.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata={"format": str(sidecar["format"])}))
    text = json.dumps({**sidecar, "version": VERSION}, indent=2, sort_keys=True)
    _atomic_write(sidecar_path(path), lambda tmp: tmp.write_text(text))
    return path


def read_sidecar(path: str | Path, fmt: str) -> dict[str, Any]:
    """The parsed JSON sidecar of ``path``, checked to be of format ``fmt`` and this version."""
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"{side}: sidecar not found")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"{side}: sidecar is implausibly large")
    try:
        data = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{side}: sidecar is unreadable or not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise CheckpointError(f"{side}: not a {fmt} sidecar")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{side}: unsupported version {data.get('version')!r}")
    return data


def read_tensors(path: str | Path, expected: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, all finite; with ``expected``, names, shapes and dtypes must match it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            if expected is not None:
                _check_header(path, f, expected)
            tensors = {key: f.get_tensor(key) for key in sorted(f.keys())}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({exc})") from exc
    for key, value in tensors.items():
        _check_tensor(path, key, value, None if expected is None else expected[key])
    return tensors


def _check_header(path: Path, f: safe_open, expected: dict[str, torch.Tensor]) -> None:
    """Names and shapes from the header alone: a hostile file cannot make us load more than we expect."""
    found = set(f.keys())
    if found != set(expected):
        missing, extra = sorted(set(expected) - found), sorted(found - set(expected))
        raise CheckpointError(f"{path}: tensor names do not match (missing {missing[:5]}, unexpected {extra[:5]})")
    for key, ref in expected.items():
        shape = tuple(f.get_slice(key).get_shape())
        if shape != tuple(ref.shape):
            raise CheckpointError(f"{path}: tensor {key!r} has shape {shape}, expected {tuple(ref.shape)}")


def _check_tensor(path: Path, key: str, value: torch.Tensor, ref: torch.Tensor | None) -> None:
    if ref is not None and value.dtype != ref.dtype:
        raise CheckpointError(f"{path}: tensor {key!r} has dtype {value.dtype}, expected {ref.dtype}")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise CheckpointError(f"{path}: tensor {key!r} holds non-finite values")


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | Path, fmt: str) -> Path:
    """Optimizer state: tensors to safetensors, hyper-parameters and scalar state to a sidecar of format ``fmt``."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, object]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return write_checkpoint(path, tensors, {"format": fmt, "param_groups": state["param_groups"], "scalars": scalars})


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path, fmt: str) -> None:
    """Restore what ``save_optimizer`` wrote into an optimizer over the same parameters, after checking it fits."""
    sidecar = read_sidecar(path, fmt)
    state = _optimizer_state(Path(path), read_tensors(path), sidecar.get("scalars", {}))
    groups = sidecar.get("param_groups")
    _check_groups(Path(path), optimizer, groups)
    _check_state(Path(path), optimizer, state)
    optimizer.load_state_dict({"state": dict(sorted(state.items())), "param_groups": groups})


def _optimizer_state(path: Path, tensors: dict[str, torch.Tensor], scalars: Any) -> dict[int, dict[str, object]]:
    """Per-parameter state from ``"<index>.<name>"`` tensors and the sidecar's scalars."""
    state: dict[int, dict[str, object]] = {}
    try:
        for key, value in tensors.items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        for idx, values in scalars.items():
            state.setdefault(int(idx), {}).update(dict(values))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed optimizer state ({exc})") from exc
    return state


def _check_groups(path: Path, optimizer: torch.optim.Optimizer, groups: object) -> None:
    """Saved groups must number parameters 0..n-1 in the optimizer's group sizes, as ``state_dict`` does."""
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if (not isinstance(groups, list)
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
            or [len(g["params"]) for g in groups] != sizes
            or [i for g in groups for i in g["params"]] != list(range(sum(sizes)))):
        raise CheckpointError(f"{path}: optimizer state is for a different parameter list")


def _check_state(path: Path, optimizer: torch.optim.Optimizer, state: dict[int, dict[str, object]]) -> None:
    """Each entry must belong to a parameter; tensors are scalars or shaped like it, other values finite numbers."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for idx, entry in state.items():
        if not 0 <= idx < len(params):
            raise CheckpointError(f"{path}: optimizer state for unknown parameter {idx}")
        for name, value in entry.items():
            if not _fits(value, params[idx]):
                raise CheckpointError(f"{path}: optimizer state {idx}.{name} does not fit its parameter")


def _fits(value: object, param: torch.Tensor) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 or value.shape == param.shape
    return value is None or isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value))
