"""Plan status, fallback reason and note: the core enums and RiskAwarePlan's constants are one protocol."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from rap_planner.core.types import FallbackReason, Plan, PlanNote, PlanStatus, SafetyAction
from rap_planner.msg import RiskAwarePlan
from rap_planner.ros.conversions import plan_from_msg, plan_to_msg


def _constants(prefix: str) -> dict[str, int]:
    """The message's constants named ``prefix``*, without the prefix."""
    return {name.removeprefix(prefix): getattr(RiskAwarePlan, name) for name in dir(RiskAwarePlan)
            if name.startswith(prefix) and name.isupper()}


@pytest.mark.parametrize(("enum", "prefix", "wire_only"), [
    (PlanStatus, "STATUS_", set()),
    (FallbackReason, "FALLBACK_", set()),
    (PlanNote, "NOTE_", {"NONE"}),  # a plan without a note is Plan.note None
    (SafetyAction, "SAFETY_", {"NONE"}),  # the ranking's choice stood: Plan.safety None
])
def test_enums_and_message_constants_have_the_same_names_and_values(enum, prefix, wire_only):
    """Bag evaluation decodes codes with the enums (no ROS there), so the values must agree too."""
    constants = _constants(prefix)
    assert {m.name: m.value for m in enum} == {k: v for k, v in constants.items() if k not in wire_only}
    assert all(constants[k] not in {m.value for m in enum} for k in wire_only)


def _plan(**fields) -> Plan:
    return Plan(stamp_s=1.0, times_s=np.array([0.0, 0.2]), states=np.zeros((2, 5)), **fields)


def _over_the_wire(plan: Plan) -> Plan:
    return plan_from_msg(deserialize_message(serialize_message(plan_to_msg(plan)), RiskAwarePlan))


@pytest.mark.parametrize("reason", list(FallbackReason))
def test_every_fallback_reason_survives_the_wire(reason):
    back = _over_the_wire(_plan(fallback=reason, reason="detail for people"))
    assert back.fallback is reason and not back.ok and back.status is PlanStatus.FALLBACK
    assert back.reason == "detail for people" and back.note is None


@pytest.mark.parametrize("note", [*PlanNote, None])
def test_ok_plans_carry_their_note(note):
    msg = plan_to_msg(_plan(note=note))
    assert msg.status == RiskAwarePlan.STATUS_OK and msg.fallback_reason == RiskAwarePlan.FALLBACK_UNSPECIFIED
    back = _over_the_wire(_plan(note=note))
    assert back.ok and back.status is PlanStatus.OK and back.fallback is None and back.note is note


@pytest.mark.parametrize("safety", [*SafetyAction, None])
def test_the_safety_action_survives_the_wire_beside_the_note(safety):
    back = _over_the_wire(_plan(safety=safety, note=PlanNote.REFINEMENT_SKIPPED_BUDGET))
    assert back.safety is safety and back.note is PlanNote.REFINEMENT_SKIPPED_BUDGET and back.ok


@pytest.mark.parametrize(("status", "code", "expected"), [
    (RiskAwarePlan.STATUS_OK, RiskAwarePlan.FALLBACK_STALE_ODOMETRY, None),  # ok wins: the code is not read
    (RiskAwarePlan.STATUS_FALLBACK, RiskAwarePlan.FALLBACK_UNSPECIFIED, FallbackReason.UNSPECIFIED),
    (RiskAwarePlan.STATUS_FALLBACK, 200, FallbackReason.UNSPECIFIED),  # a newer sender's code
    (7, RiskAwarePlan.FALLBACK_OFF_ROAD, FallbackReason.OFF_ROAD),  # any status but ok is a fallback
])
def test_decoding_never_fails_on_codes(status, code, expected):
    msg = RiskAwarePlan(status=status, fallback_reason=code, note=99, status_reason="as sent")
    plan = plan_from_msg(msg)
    assert plan.fallback is expected and plan.ok == (expected is None)
    assert plan.note is None and plan.reason == "as sent"
