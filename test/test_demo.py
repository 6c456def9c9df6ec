"""`make demo` must fail loudly when its episode does not finish (it used to exit 0 with no outcome)."""

from __future__ import annotations

import json

from rap_planner.demo import run_demo


def test_an_episode_cut_short_by_the_wall_clock_is_an_error(ros_domain, tmp_path):
    code = run_demo(str(tmp_path), wall_limit_s=2.0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 1 and summary["finished"] is False
    assert summary["steps"] > 0 and (tmp_path / "episode_bag").is_dir()  # what ran is still written
