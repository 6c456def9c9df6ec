"""Plumbing shared by every training stage (predictor, biased sampler): config files and torch settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml


def read_config_file(path: Path) -> dict[str, Any]:
    """A training config from YAML or JSON (safe loaders only)."""
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: training config must be a mapping")
    return data


@contextmanager
def torch_settings(seed: int, num_threads: int | None, deterministic: bool) -> Iterator[None]:
    """Seed, threads and deterministic kernels for a run; restored afterwards (the caller's process may go on)."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(deterministic)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)
