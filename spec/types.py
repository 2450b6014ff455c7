"""Declared data types of variables and params, and the values they admit."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeAlias

from .limits import MAX_DIGITS

__all__ = ["KINDS", "SCALAR_KINDS", "Kind", "Type", "Value", "list_values"]

Kind: TypeAlias = Literal["int", "decimal", "bool", "enum", "str", "principal", "set"]
KINDS: tuple[Kind, ...] = ("int", "decimal", "bool", "enum", "str", "principal", "set")
SCALAR_KINDS: tuple[Kind, ...] = ("int", "decimal", "bool", "enum", "str", "principal")

#: A runtime value: ``int``, ``Decimal``, ``bool``, ``str`` (also enums and principal ids),
#: ``None`` (an unset principal) or a ``frozenset`` of scalars.
Value: TypeAlias = "int | Decimal | bool | str | frozenset[int | Decimal | bool | str] | None"


@dataclass(frozen=True, slots=True)
class Type:
    """A declared type with its domain.

    ``min``/``max`` bound ``int`` and ``decimal``; ``places`` is the number of decimal places a
    ``decimal`` may carry; ``values`` lists an ``enum``'s values; ``max_length`` bounds a ``str``;
    ``of`` is the element type of a ``set`` and ``max_size`` bounds its size.
    """

    kind: Kind
    min: int | Decimal | None = None
    max: int | Decimal | None = None
    places: int | None = None
    values: tuple[str, ...] = ()
    max_length: int | None = None
    of: Type | None = None
    max_size: int | None = None

    @property
    def is_finite(self) -> bool:
        """Whether the domain has finitely many values (principals count as finite: see DESIGN §3)."""
        if self.kind in ("bool", "enum", "principal"):
            return True
        if self.kind == "int":
            return self.min is not None and self.max is not None
        if self.kind == "decimal":
            return self.min is not None and self.max is not None and self.places is not None
        if self.kind == "set":
            return self.of is not None and self.of.is_finite
        return False

    def contains(self, value: object) -> bool:
        """Whether ``value`` is a member of this type's domain.

        A decimal domain never holds a nonzero number of magnitude ``10**100`` or more, or
        below ``10**-100``, even when its bounds are not written (the reach of a spec's numbers).
        """
        kind = self.kind
        if kind == "bool":
            return isinstance(value, bool)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return False
            return _within(value, self.min, self.max)
        if kind == "decimal":
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                return False
            dec = Decimal(value)
            if not dec.is_finite():
                return False
            if dec and not -MAX_DIGITS <= dec.adjusted() < MAX_DIGITS:
                # Beyond a spec's reach (see `railguard.spec.limits`): no domain holds it, and
                # arithmetic on such a number costs memory without bound.
                return False
            if self.places is not None:
                exponent = dec.normalize().as_tuple().exponent
                if isinstance(exponent, int) and -exponent > self.places:
                    return False
            return _within(dec, self.min, self.max)
        if kind == "enum":
            return isinstance(value, str) and value in self.values
        if kind == "str":
            return isinstance(value, str) and (
                self.max_length is None or len(value) <= self.max_length
            )
        if kind == "principal":
            return value is None or (isinstance(value, str) and value != "")
        if kind == "set":
            if not isinstance(value, frozenset) or self.of is None:
                return False
            if self.max_size is not None and len(value) > self.max_size:
                return False
            return all(self.of.contains(item) for item in value)
        return False

    def describe(self) -> str:
        """A short human description such as ``int in [0, 10000]``."""
        if self.kind in ("int", "decimal") and (self.min is not None or self.max is not None):
            low = "-inf" if self.min is None else str(self.min)
            high = "inf" if self.max is None else str(self.max)
            return f"{self.kind} in [{low}, {high}]"
        if self.kind == "enum":
            return "one of " + list_values(self.values)
        if self.kind == "str" and self.max_length is not None:
            return f"str of at most {self.max_length} characters"
        if self.kind == "set" and self.of is not None:
            return f"set of {self.of.describe()}"
        return self.kind


#: Values a message lists before it says how many more there are.
_SHOWN_VALUES = 12


def list_values(values: tuple[str, ...]) -> str:
    """``a, b, c`` for a message; a long list shows its first values and how many more."""
    if len(values) <= _SHOWN_VALUES:
        return ", ".join(values)
    shown = ", ".join(values[:_SHOWN_VALUES])
    return f"{shown} and {len(values) - _SHOWN_VALUES:,} more"


def _within(value: int | Decimal, low: int | Decimal | None, high: int | Decimal | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)
