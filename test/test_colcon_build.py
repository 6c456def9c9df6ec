"""The colcon path: the package builds in a colcon workspace on the pip ROS and imports from install/."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_colcon_build_installs_messages_python_and_executables():
    result = subprocess.run(["make", "-s", "colcon"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "colcon install OK: " + str(ROOT / "build/colcon/install/rap_planner/lib") in result.stdout
    assert "RiskAwarePlan" in result.stdout
    assert "rap-planner 0.1.0" in result.stdout
