"""A refund service written by hand (see ``examples/refund.yaml``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import Refused


class RefundService:
    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.bugs = bugs
        self.state = "draft"
        self.amount = 0
        self.requested_by: str | None = None
        self.approved_by: str | None = None

    def _need(
        self, state: tuple[str, ...], roles: frozenset[str], role: str, *, check: bool = True
    ) -> None:
        if self.state not in state:
            raise Refused(f"not in {state}")
        if check and role not in roles:
            raise Refused(f"needs {role}")

    def request(self, actor: str, roles: frozenset[str], amount: int) -> None:
        self._need(("draft",), roles, "support")
        if not 1 <= amount <= 10000:
            raise Refused("amount out of range")
        limit_ok = amount < 5000 if "off-by-one" in self.bugs else amount <= 5000
        if not limit_ok:
            raise Refused("over the limit")
        self.amount, self.requested_by, self.state = amount, actor, "requested"

    def approve(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("requested",), roles, "manager", check="missing-permission" not in self.bugs)
        if actor == self.requested_by and "no-four-eyes" not in self.bugs:
            raise Refused("four eyes")
        if "forgotten-assignment" not in self.bugs:
            self.approved_by = actor
        self.state = "approved"

    def pay(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("approved",), roles, "payments")
        self.state = "paid"

    def reject(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("requested", "approved"), roles, "manager")
        self.state = "rejected"

    def cancel(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("draft", "requested", "approved"), roles, "support")
        self.state = "cancelled"


class RefundAdapter:
    """The adapter: events to method calls, refusals to ``False``."""

    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.service = RefundService(bugs)

    def fire(
        self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any]
    ) -> bool:
        method: Callable[..., None] | None = getattr(self.service, event, None)
        if method is None or event.startswith("_"):
            return False
        if event == "request" and set(params) != {"amount"}:
            return False
        if event != "request" and params:
            return False
        try:
            method(actor, roles, **params)
        except Refused:
            return False
        return True

    def state(self) -> str:
        return self.service.state

    def variables(self) -> dict[str, Any]:
        s = self.service
        return {"amount": s.amount, "requested_by": s.requested_by, "approved_by": s.approved_by}

    def error(self) -> None:
        self.service.state = "cancelled"


def correct() -> RefundAdapter:
    return RefundAdapter()


def with_missing_permission() -> RefundAdapter:
    return RefundAdapter(frozenset({"missing-permission"}))


def with_off_by_one() -> RefundAdapter:
    return RefundAdapter(frozenset({"off-by-one"}))


def with_forgotten_assignment() -> RefundAdapter:
    return RefundAdapter(frozenset({"forgotten-assignment"}))


def with_no_four_eyes() -> RefundAdapter:
    return RefundAdapter(frozenset({"no-four-eyes"}))


#: The deliberate bugs, each a one-line change to the correct service, by name.
BUGS: dict[str, Callable[[], RefundAdapter]] = {
    "missing-permission": with_missing_permission,
    "off-by-one": with_off_by_one,
    "forgotten-assignment": with_forgotten_assignment,
    "no-four-eyes": with_no_four_eyes,
}


def emitted(spec: object, principals: object) -> RefundAdapter:
    """The factory that tests emitted by ``railguard check --emit-tests`` call (``RAILGUARD_ADAPTER``)."""
    return RefundAdapter()


def emitted_with_forgotten_assignment(spec: object, principals: object) -> RefundAdapter:
    return with_forgotten_assignment()
