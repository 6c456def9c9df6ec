"""The launch files spell topic names for ``ros2 launch``; they must be the ones in rap_planner.topics."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from rap_planner import topics

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"


def _topic_constants() -> set[str]:
    return {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)}


def _launch_topics(path: Path) -> set[str]:
    """Every absolute name in an attribute value (``[a, b]`` lists included); comments and descriptions are prose."""
    names = set()
    for element in ET.parse(path).iter():
        for key, value in element.attrib.items():
            if key != "description":
                names |= {token for token in re.split(r"[\s,\[\]]+", value) if token.startswith("/")}
    return names


def test_topic_constants_are_unique_absolute_names():
    values = [v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)]
    assert len(values) == len(set(values)) and all(re.fullmatch(r"(/[a-z_]+)+", v) for v in values), values


def test_launch_files_use_only_known_topic_names():
    files = sorted(LAUNCH_DIR.glob("*.launch.xml"))
    used = set().union(*(_launch_topics(f) for f in files))
    assert {topics.TRACKED_AGENTS, topics.EGO_ODOM, topics.PLAN} <= used  # the scan sees the remaps and lists
    assert used <= _topic_constants(), sorted(used - _topic_constants())
