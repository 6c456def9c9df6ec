"""safetensors + JSON sidecar files for the biased sampler and its optimizer; nothing is ever unpickled.

Every tensor's name, shape, dtype and finiteness is checked against what the caller expects before
it is used, so a truncated, edited or foreign file fails with a ``BiasedCheckpointError`` naming the
file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

VERSION = 1
MAX_SIDECAR_BYTES = 4 * 1024 * 1024


class BiasedCheckpointError(ValueError):
    """A sampler or optimizer file is missing, corrupt or does not match what it should hold."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


def write_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], sidecar: dict) -> Path:
    """Write ``path`` (safetensors) and its JSON sidecar, each atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(data, str(tmp), metadata={"format": str(sidecar.get("format"))}))
    text = json.dumps({**sidecar, "version": VERSION}, indent=2, sort_keys=True)
    _atomic_write(sidecar_path(path), lambda tmp: tmp.write_text(text))
    return path


def read_sidecar(path: str | Path, fmt: str) -> dict:
    """The parsed JSON sidecar of ``path``, checked to be of format ``fmt`` and this version."""
    side = sidecar_path(path)
    if not side.is_file():
        raise BiasedCheckpointError(f"{side}: sidecar not found")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise BiasedCheckpointError(f"{side}: sidecar is implausibly large")
    try:
        data = json.loads(side.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BiasedCheckpointError(f"{side}: sidecar is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise BiasedCheckpointError(f"{side}: not a {fmt} sidecar")
    if data.get("version") != VERSION:
        raise BiasedCheckpointError(f"{side}: unsupported version {data.get('version')!r}")
    return data


def read_tensors(path: str | Path, expected: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file; with ``expected``, names, shapes and dtypes must match it exactly."""
    path = Path(path)
    if not path.is_file():
        raise BiasedCheckpointError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if expected is not None and keys != set(expected):
                missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
                raise BiasedCheckpointError(f"{path}: tensor names do not match (missing {missing[:5]}, "
                                            f"unexpected {extra[:5]})")
            tensors = {key: f.get_tensor(key) for key in sorted(keys)}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise BiasedCheckpointError(f"{path}: corrupt or unreadable safetensors file ({exc})") from exc
    for key, value in tensors.items():
        ref = None if expected is None else expected[key]
        if ref is not None and (value.shape != ref.shape or value.dtype != ref.dtype):
            raise BiasedCheckpointError(f"{path}: tensor {key!r} has shape {tuple(value.shape)} ({value.dtype}), "
                                        f"expected shape {tuple(ref.shape)} ({ref.dtype})")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise BiasedCheckpointError(f"{path}: tensor {key!r} holds non-finite values")
    return tensors


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> Path:
    """Optimizer state: tensors to safetensors, hyper-parameters and scalar state to the sidecar."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return write_checkpoint(path, tensors, {"format": "rap_planner.biased_optimizer",
                                            "param_groups": state["param_groups"], "scalars": scalars})


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> None:
    """Restore what ``save_optimizer`` wrote into an optimizer over the same parameters."""
    sidecar = read_sidecar(path, "rap_planner.biased_optimizer")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    try:
        for key, value in read_tensors(path).items():
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        for idx, values in sidecar.get("scalars", {}).items():
            state.setdefault(int(idx), {}).update(dict(values))
    except (ValueError, TypeError, AttributeError) as exc:
        raise BiasedCheckpointError(f"{path}: malformed optimizer state ({exc})") from exc
    for idx, entry in state.items():
        shapes_ok = all(v.dim() == 0 or v.shape == params[idx].shape
                        for v in entry.values() if isinstance(v, torch.Tensor)) if 0 <= idx < len(params) else False
        if not shapes_ok:
            raise BiasedCheckpointError(f"{path}: optimizer state {idx} does not fit the parameters")
    optimizer.load_state_dict({"state": dict(sorted(state.items())), "param_groups": sidecar["param_groups"]})
