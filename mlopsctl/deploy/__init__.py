"""Deploy targets and the blue-green slot model.

Every environment has two slots, ``blue`` and ``green``. Which version sits in which slot, and
which slot is live, is *derived* from the environment's assignment history (pure, below), so
nothing extra is committed: a new version goes into the idle slot and goes live there; a
version already in the other slot (a rollback) just flips back.

A target makes the derived state real. The interface is small on purpose:

    prepare(plan, slot, manifest, artifact_path)  load a verified artifact into a slot (idle)
    activate(plan)                                make ``plan.live_slot`` the live one, atomically
    state(env, model)                             what is actually deployed, for status/sync
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SLOTS = ("blue", "green")


def other_slot(slot: str | None) -> str:
    return "green" if slot == "blue" else "blue"


@dataclass
class SlotPlan:
    """The desired state of one model in one environment."""

    model: str
    env: str
    live_version: str | None = None  # 'v1.2.0', None when nothing is live
    live_slot: str | None = None
    slots: dict[str, str | None] = field(default_factory=lambda: {"blue": None, "green": None})

    @property
    def idle_slot(self) -> str:
        return other_slot(self.live_slot)

    def slot_of(self, version: str) -> str | None:
        for slot, held in self.slots.items():
            if held == version:
                return slot
        return None

    def place(self, version: str) -> str:
        """Make ``version`` live: flip to the slot holding it, or load it into the idle slot.
        Returns the slot it is live in."""
        if self.live_slot and self.slots[self.live_slot] == version:
            return self.live_slot
        target = self.slot_of(version) or self.idle_slot
        self.slots[target] = version
        self.live_slot = target
        self.live_version = version
        return target

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "environment": self.env, "live": self.live_version,
                "live_slot": self.live_slot, "slots": dict(self.slots)}


def derive_slots(model: str, env: str, assigned: list[str], holder: str | None) -> SlotPlan:
    """Replay the versions assigned to ``env`` (oldest first) into slots, then make the
    registry's current holder of the stage live (GTO semantics decide the holder, e.g. after an
    unassignment it falls back to the previous version)."""
    plan = SlotPlan(model, env)
    for version in assigned:
        plan.place(version)
    if holder is None:
        plan.live_version, plan.live_slot = None, None
    else:
        plan.place(holder)
    return plan


@dataclass(frozen=True)
class DeployedSlot:
    version: str | None
    sha256: str | None
    healthy: bool
    detail: str = ""


@dataclass(frozen=True)
class TargetState:
    live_slot: str | None
    slots: dict[str, DeployedSlot]

    @property
    def live_version(self) -> str | None:
        if self.live_slot is None:
            return None
        return self.slots[self.live_slot].version


class Target(Protocol):
    name: str

    def prepare(self, plan: SlotPlan, slot: str, manifest: Any, artifact: Path) -> None: ...

    def activate(self, plan: SlotPlan) -> None: ...

    def state(self, env: str, model: str) -> TargetState: ...
