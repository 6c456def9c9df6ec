"""Where the package's data (launch/, config/, models/) lives, on either install path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def share_dir() -> Path:
    """share/rap_planner of a colcon or pip install, or the source tree of an editable install."""
    source_root = PACKAGE_DIR.parent
    if (source_root / "launch").is_dir() and (source_root / "package.xml").exists():
        return source_root
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix and (Path(prefix) / "share/rap_planner/launch").is_dir():
            return Path(prefix) / "share/rap_planner"
    candidate = Path(sys.prefix) / "share/rap_planner"
    if candidate.is_dir():
        return candidate
    raise FileNotFoundError("cannot find share/rap_planner (launch/, config/): is rap_planner installed?")


def models_dir() -> Path:
    return PACKAGE_DIR / "models"


def outputs_dir() -> Path:
    """Default root for everything commands write (git-ignored in a checkout)."""
    return Path(os.environ.get("RAP_PLANNER_OUTPUTS", "outputs"))
