"""A Python builder for specs: the same document as YAML, assembled in code.

The builder only collects plain data; :meth:`SpecBuilder.build` validates it with the same
loader as YAML and JSON, so a built spec obeys exactly the same rules and errors::

    b = SpecBuilder("refund", description="Refund a payment after a second approval.")
    b.role("support", "refund.request", "refund.cancel")
    b.variable("amount", "int", min=0, max=10000, initial=0)
    b.state("draft", initial=True).state("paid", terminal="success")
    b.transition("pay", "draft", "paid", permission="public")
    spec = b.build()
"""

from __future__ import annotations

from typing import Any

from .loader import load_data
from .model import Spec

__all__ = ["SpecBuilder"]


class SpecBuilder:
    """Collects a spec's parts in declaration order; every method returns the builder."""

    def __init__(self, name: str, description: str = "", *, on_error: str | None = None) -> None:
        self._data: dict[str, Any] = {"railguard": 1, "name": name}
        if description:
            self._data["description"] = description
        self._data["roles"] = {}
        self._data["variables"] = {}
        self._data["states"] = {}
        if on_error is not None:
            self._data["on_error"] = on_error
        self._data["transitions"] = []

    def role(self, name: str, *permissions: str) -> SpecBuilder:
        """Declare a role granting ``permissions``."""
        self._data["roles"][name] = list(permissions)
        return self

    def variable(self, name: str, type: str, **options: Any) -> SpecBuilder:
        """Declare a variable: ``type`` plus the options of the YAML form (``min``, ``initial``, ...)."""
        self._data["variables"][name] = {"type": type, **options}
        return self

    def state(
        self,
        name: str,
        *,
        initial: bool = False,
        terminal: str | None = None,
        on_error: str | None = None,
        timeout: dict[str, Any] | None = None,
        description: str = "",
    ) -> SpecBuilder:
        """Declare a state."""
        body: dict[str, Any] = {}
        if initial:
            body["initial"] = True
        if terminal is not None:
            body["terminal"] = terminal
        if on_error is not None:
            body["on_error"] = on_error
        if timeout is not None:
            body["timeout"] = timeout
        if description:
            body["description"] = description
        self._data["states"][name] = body
        return self

    def on_error(self, state: str) -> SpecBuilder:
        """Set the workflow's default error exit (a failure terminal)."""
        self._data["on_error"] = state
        return self

    def transition(
        self,
        event: str,
        source: str | list[str],
        target: str,
        *,
        permission: str,
        params: dict[str, Any] | None = None,
        guard: str | None = None,
        assign: dict[str, str] | None = None,
        effect: str | None = None,
        compensate: str | None = None,
        irreversible: bool = False,
        description: str = "",
    ) -> SpecBuilder:
        """Declare a transition; ``permission`` is required (``"public"`` must be written out)."""
        body: dict[str, Any] = {
            "event": event,
            "from": source,
            "to": target,
            "permission": permission,
        }
        optional = {
            "params": params,
            "guard": guard,
            "assign": assign,
            "effect": effect,
            "compensate": compensate,
            "description": description or None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if irreversible:
            body["irreversible"] = True
        self._data["transitions"].append(body)
        return self

    def always(self, name: str, expression: str) -> SpecBuilder:
        """Declare an ``always`` invariant."""
        return self._invariant({"name": name, "always": expression})

    def never(self, name: str, expression: str) -> SpecBuilder:
        """Declare a ``never`` invariant."""
        return self._invariant({"name": name, "never": expression})

    def precedes(self, name: str, first: str, then: str) -> SpecBuilder:
        """Declare that event ``then`` never fires unless ``first`` fired earlier on the run."""
        return self._invariant({"name": name, "precedes": {"first": first, "then": then}})

    def exclusive_roles(self, *roles: str) -> SpecBuilder:
        """Declare that no principal may hold more than one of ``roles``."""
        self._data.setdefault("exclusive_roles", []).append(list(roles))
        return self

    def waive(self, check: str, target: str, reason: str) -> SpecBuilder:
        """Waive rule ``check`` for ``target`` with a written ``reason``."""
        self._data.setdefault("waivers", []).append(
            {"check": check, "target": target, "reason": reason}
        )
        return self

    def _invariant(self, body: dict[str, Any]) -> SpecBuilder:
        self._data.setdefault("invariants", []).append(body)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The collected plain data (a copy)."""
        import copy

        return copy.deepcopy(self._data)

    def build(self) -> Spec:
        """Validate and return the spec; raises :class:`~railguard.spec.LoadError` on any problem."""
        return load_data(self.to_dict(), file="<builder>")
