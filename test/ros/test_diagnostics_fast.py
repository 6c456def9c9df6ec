"""InputProblems counts by ProblemKind; /diagnostics carries each kind's wire name (what tools and the harness read)."""

from __future__ import annotations

from rclpy.node import Node

from rap_planner.ros.diagnostics import InputProblems, ProblemKind


def test_kinds_have_distinct_snake_case_wire_names():
    names = [kind.value for kind in ProblemKind]
    assert len(set(names)) == len(names)
    assert all(name == kind.name.lower() for name, kind in zip(names, ProblemKind, strict=True))


def test_counts_are_published_under_the_wire_names(rclpy_context):
    node = Node("diagnostics_test", context=rclpy_context)
    try:
        problems = InputProblems(node, "tester")
        published = []
        problems._pub.publish = published.append
        problems.publish()
        assert published[-1].status[0].message == "inputs ok" and published[-1].status[0].values == []
        problems.report(ProblemKind.BAD_AGENT, "agent 7: non-finite pose/velocity/size")
        problems.report(ProblemKind.WRONG_FRAME, "tracks in frame 'odom', expected 'map'")
        problems.report(ProblemKind.BAD_AGENT, "agent 9: speed 2e+03 m/s out of range (<= 1000 m/s)")
        problems.publish()
        status = published[-1].status[0]
        assert status.name == "rap_planner/tester"
        assert {kv.key: kv.value for kv in status.values} == {"bad_agent": "2", "wrong_frame": "1"}
        assert status.message == ("bad_agent: agent 9: speed 2e+03 m/s out of range (<= 1000 m/s); "
                                  "wrong_frame: tracks in frame 'odom', expected 'map'")
        assert problems.counts[ProblemKind.BAD_AGENT] == 2
    finally:
        node.destroy_node()
