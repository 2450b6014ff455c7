"""An order service written by hand (see ``examples/order.yaml``): reserve stock, charge,
ship; undo what was done when an order is cancelled or fails."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import Refused


class OrderService:
    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.bugs = bugs
        self.state = "new"
        self.total = 0
        #: Undo actions owed, oldest first; and the ones that ran.
        self.owed: list[str] = []
        self.undone: list[str] = []

    def _need(
        self, states: tuple[str, ...], roles: frozenset[str], role: str, *, check: bool = True
    ) -> None:
        if self.state not in states:
            raise Refused(f"not in {states}")
        if check and role not in roles:
            raise Refused(f"needs {role}")

    def place(self, actor: str, roles: frozenset[str], total: int) -> None:
        self._need(("new",), roles, "customer")
        if not 1 <= total <= 100000:
            raise Refused("total out of range")
        if "forgotten-assignment" not in self.bugs:
            self.total = total
        self.state = "placed"

    def reserve(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("placed",), roles, "system", check="missing-permission" not in self.bugs)
        self.owed.append("inventory.release")
        self.state = "reserved"

    def charge(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("reserved",), roles, "system")
        if not (self.total > 1 if "off-by-one" in self.bugs else self.total > 0):
            raise Refused("nothing to charge")
        if "missing-compensation" not in self.bugs:
            self.owed.append("payments.refund")
        self.state = "charged"

    def ship(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("charged",), roles, "system")
        self.owed.clear()
        self.state = "shipped"

    def cancel(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("placed", "reserved", "charged"), roles, "customer")
        self._undo("cancelled")

    def fail(self) -> None:
        if self.state in ("shipped", "failed", "cancelled"):
            raise Refused("finished")
        self._undo("failed")

    def _undo(self, target: str) -> None:
        self.undone.extend(reversed(self.owed))
        self.owed.clear()
        self.state = target


class OrderAdapter:
    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.service = OrderService(bugs)

    def fire(
        self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any]
    ) -> bool:
        if event not in ("place", "reserve", "charge", "ship", "cancel"):
            return False
        if set(params) != ({"total"} if event == "place" else set()):
            return False
        try:
            getattr(self.service, event)(actor, roles, **params)
        except Refused:
            return False
        return True

    def state(self) -> str:
        return self.service.state

    def variables(self) -> dict[str, Any]:
        return {"total": self.service.total}

    def error(self) -> None:
        self.service.fail()

    def compensations(self) -> list[str]:
        return list(self.service.undone)


def correct() -> OrderAdapter:
    return OrderAdapter()


def with_missing_permission() -> OrderAdapter:
    return OrderAdapter(frozenset({"missing-permission"}))


def with_off_by_one() -> OrderAdapter:
    return OrderAdapter(frozenset({"off-by-one"}))


def with_forgotten_assignment() -> OrderAdapter:
    return OrderAdapter(frozenset({"forgotten-assignment"}))


def with_missing_compensation() -> OrderAdapter:
    return OrderAdapter(frozenset({"missing-compensation"}))


#: The deliberate bugs, each a one-line change to the correct service, by name.
BUGS: dict[str, Callable[[], OrderAdapter]] = {
    "missing-permission": with_missing_permission,
    "off-by-one": with_off_by_one,
    "forgotten-assignment": with_forgotten_assignment,
    "missing-compensation": with_missing_compensation,
}
