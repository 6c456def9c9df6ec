"""The `rap-planner` command itself: help, version, clear errors."""

import subprocess
import sys

from rap_planner import __version__


def rap_planner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rap_planner.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_help_lists_every_subcommand_and_version_prints():
    out = rap_planner("--help").stdout
    for command in ("up", "param", "bag", "train", "eval", "bench", "data", "demo"):
        assert command in out
    assert rap_planner("--version").stdout.strip() == f"rap-planner {__version__}"


def test_missing_bag_and_bad_launch_argument_are_clear_errors(tmp_path):
    result = rap_planner("bag", "info", str(tmp_path / "nope"))
    assert result.returncode == 1 and "no bag at" in result.stderr
    result = rap_planner("up", "sim", "no_such_arg:=1", "--duration", "1")
    assert result.returncode != 0 and "unknown launch arguments: no_such_arg" in result.stderr
