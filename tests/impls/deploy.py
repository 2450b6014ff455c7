"""A deploy pipeline written by hand (see ``examples/deploy.yaml``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from . import Refused

ABORTABLE = ("draft", "testing", "red", "review", "approved")


class DeployPipeline:
    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.bugs = bugs
        self.state = "draft"
        self.attempts = 0
        self.tests_passed = False
        self.author: str | None = None
        self.reviewer: str | None = None
        self.environment = "staging"

    def _need(
        self, states: tuple[str, ...], roles: frozenset[str], role: str, *, check: bool = True
    ) -> None:
        if self.state not in states:
            raise Refused(f"not in {states}")
        if check and role not in roles:
            raise Refused(f"needs {role}")

    def submit(self, actor: str, roles: frozenset[str], environment: str) -> None:
        self._need(("draft",), roles, "author")
        if environment not in ("staging", "production"):
            raise Refused("environment")
        self.author, self.attempts, self.environment, self.state = actor, 1, environment, "testing"

    def report_green(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("testing",), roles, "ci")
        if "forgotten-assignment" not in self.bugs:
            self.tests_passed = True
        self.state = "review"

    def report_red(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("testing",), roles, "ci")
        self.state = "red"

    def retry(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("red",), roles, "ci")
        if not (self.attempts <= 3 if "off-by-one" in self.bugs else self.attempts < 3):
            raise Refused("too many attempts")
        self.attempts += 1
        self.state = "testing"

    def give_up(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("red",), roles, "ci")
        if self.attempts < 3:
            raise Refused("attempts left")
        self.state = "aborted"

    def approve(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("review",), roles, "reviewer")
        if actor == self.author and "self-review" not in self.bugs:
            raise Refused("authors do not review their own change")
        self.reviewer, self.state = actor, "approved"

    def reject(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("review",), roles, "reviewer")
        self.state = "rejected"

    def release(self, actor: str, roles: frozenset[str]) -> None:
        self._need(("approved",), roles, "ci", check="missing-permission" not in self.bugs)
        if not self.tests_passed:
            raise Refused("tests did not pass")
        self.state = "released"

    def abort(self, actor: str, roles: frozenset[str]) -> None:
        self._need(ABORTABLE, roles, "author")
        self.state = "aborted"


class DeployAdapter:
    def __init__(self, bugs: frozenset[str] = frozenset()) -> None:
        self.pipeline = DeployPipeline(bugs)

    def fire(
        self, event: str, actor: str, roles: frozenset[str], params: Mapping[str, Any]
    ) -> bool:
        method: Callable[..., None] | None = getattr(self.pipeline, event, None)
        if method is None or event.startswith("_"):
            return False
        if set(params) != ({"environment"} if event == "submit" else set()):
            return False
        try:
            method(actor, roles, **params)
        except Refused:
            return False
        return True

    def state(self) -> str:
        return self.pipeline.state

    def variables(self) -> dict[str, Any]:
        p = self.pipeline
        return {
            "attempts": p.attempts,
            "tests_passed": p.tests_passed,
            "author": p.author,
            "reviewer": p.reviewer,
            "environment": p.environment,
        }

    def error(self) -> None:
        self.pipeline.state = "aborted"


def correct() -> DeployAdapter:
    return DeployAdapter()


def with_missing_permission() -> DeployAdapter:
    return DeployAdapter(frozenset({"missing-permission"}))


def with_off_by_one() -> DeployAdapter:
    return DeployAdapter(frozenset({"off-by-one"}))


def with_forgotten_assignment() -> DeployAdapter:
    return DeployAdapter(frozenset({"forgotten-assignment"}))


def with_self_review() -> DeployAdapter:
    return DeployAdapter(frozenset({"self-review"}))


#: The deliberate bugs, each a one-line change to the correct service, by name.
BUGS: dict[str, Callable[[], DeployAdapter]] = {
    "missing-permission": with_missing_permission,
    "off-by-one": with_off_by_one,
    "forgotten-assignment": with_forgotten_assignment,
    "self-review": with_self_review,
}
