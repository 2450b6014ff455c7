"""The JSON Schema (draft 2020-12) of the spec format, for editors and CI validation.

The schema mirrors the structural rules of :mod:`railguard.spec.loader`: the same keys
(``TOP_KEYS``, ``STATE_KEYS``, ``TRANSITION_KEYS``, ``INVARIANT_KEYS``, ``TYPE_KEYS``), the
same name patterns and the same required keys. Where the loader tolerates an empty value
(``description:``, a state written ``review:``, ``guard: ~``) so does the schema.

What a JSON Schema cannot say is left to the loader: that names refer to declared states,
variables, events and roles, that exactly one state is initial, that values lie within
``min``/``max``, and that expressions parse and type-check.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .expr import RESERVED_NAMES
from .limits import (
    MAX_DURATION_SECONDS,
    MAX_ENTRIES,
    MAX_NAME_LENGTH,
    MAX_PLACES,
    MAX_TEXT_LENGTH,
)
from .loader import DOTTED, IDENTIFIER, MAX_ITEMS, PROPERTY_NAME
from .model import FORMAT_VERSION
from .types import KINDS

__all__ = ["SCHEMA_ID", "json_schema"]

SCHEMA_ID = "https://railguard.dev/schema/spec-1.json"

Schema = dict[str, Any]

#: A positive duration: ``15m``, ``1h30m``, ``1d12h``, ``90s`` (at least one non-zero part).
DURATION_PATTERN = r"^\s*(?=[0-9dhms]*[1-9])(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?\s*$"
#: Exact decimal text as :class:`decimal.Decimal` reads it (``"19.99"``, ``"-0.5"``, ``"1e3"``).
_DIGITS = r"\d(?:_?\d)*"
DECIMAL_PATTERN = (
    rf"^\s*[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?\s*$"
)
#: The largest number of decimal places a ``decimal`` may declare.


def _ref(name: str, description: str) -> Schema:
    return {"$ref": f"#/$defs/{name}", "description": description}


def _optional(schema: Schema, description: str) -> Schema:
    """``schema`` or ``null`` (which the loader reads as "not given")."""
    return {"description": description, "anyOf": [schema, {"type": "null"}]}


def _text(description: str) -> Schema:
    return {"description": description, "type": ["string", "null"], "maxLength": MAX_TEXT_LENGTH}


def _count(description: str, minimum: int = 0, maximum: int | None = None) -> Schema:
    body: Schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        body["maximum"] = maximum
    return _optional(body, description)


def _ecma(regex: re.Pattern[str]) -> str:
    """A loader name regex as an ECMA-262 pattern: ``\\A…\\Z`` becomes ``^…$``.

    ECMA-262 has no ``\\A``/``\\Z`` (``\\Z`` would match a letter Z), and its ``$`` matches
    only at the very end of the text, never before a final line break.
    """
    text = regex.pattern
    assert text.startswith("\\A") and text.endswith("\\Z"), text
    return f"^{text[2:-2]}$"


def _names(description: str, pattern: str) -> Schema:
    body: Schema = {"type": "string", "pattern": pattern, "maxLength": MAX_NAME_LENGTH}
    if description:
        body["description"] = description
    return body


def _unreserved(pattern: str) -> Schema:
    return {"type": "string", "pattern": pattern, "not": {"enum": sorted(RESERVED_NAMES)}}


# --------------------------------------------------------------------------- type declarations

_DECIMAL_REF: Schema = {"$ref": "#/$defs/decimalValue"}
#: Keys a kind cannot do without (besides ``type``).
_REQUIRED_KEYS = {"enum": ["values"], "set": ["of"]}
#: The kinds a set may hold (no sets of sets).
_ELEMENT_KINDS = tuple(kind for kind in KINDS if kind != "set")
#: The element kinds that may be named alone, as in ``of: int`` (an enum needs its values).
_SHORT_ELEMENT_KINDS = [kind for kind in _ELEMENT_KINDS if kind not in _REQUIRED_KEYS]

#: Per kind, the keys the loader allows besides ``type`` (``TYPE_KEYS`` in the loader).
_KIND_KEYS: dict[str, Schema] = {
    "int": {
        "min": _optional({"type": "integer"}, "The smallest value allowed (inclusive)."),
        "max": _optional({"type": "integer"}, "The largest value allowed (inclusive)."),
    },
    "decimal": {
        "min": _optional(_DECIMAL_REF, "The smallest value allowed (inclusive)."),
        "max": _optional(_DECIMAL_REF, "The largest value allowed (inclusive)."),
        "places": _count("How many decimal places a value may carry (0 to 28).", 0, MAX_PLACES),
    },
    "bool": {},
    "enum": {
        "values": {
            "description": "The enum's values: a non-empty list of distinct, non-empty names.",
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ENTRIES,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_LENGTH},
        },
    },
    "str": {
        "max_length": _count("The longest text allowed, in characters."),
    },
    "principal": {},
    "set": {
        "of": {
            "description": "The type of the set's elements: a kind name such as `int`, or a type "
            "declaration (sets of sets are not supported).",
            "anyOf": [
                {"enum": _SHORT_ELEMENT_KINDS},
                {"$ref": "#/$defs/elementType"},
            ],
        },
        "max_size": _count("The most elements the set may hold."),
    },
}

_KIND_TEXT = {
    "int": "an integer, optionally bounded by `min`/`max`",
    "decimal": "an exact decimal (for money), with `min`, `max` and `places`",
    "bool": "true or false",
    "enum": "one of the names listed in `values`",
    "str": "text, optionally bounded by `max_length`",
    "principal": "an actor id, unset until assigned",
    "set": "a set of `of` elements; membership with `in`, size with `len`",
}


def _value(kind: str) -> Schema:
    """A literal of ``kind`` in ``initial``/``default`` (the loader checks its domain)."""
    if kind == "int":
        return {"type": "integer"}
    if kind == "decimal":
        return {"$ref": "#/$defs/decimalValue"}
    if kind == "bool":
        return {"type": "boolean"}
    if kind in ("enum", "str"):
        return {"type": "string"}
    if kind == "principal":
        return {"type": "null"}
    return {"type": "array", "items": {"type": ["integer", "number", "string", "boolean"]}}


def _set_items(value_key: str, description: str) -> list[Schema]:
    """Rules typing the elements of a set's ``value_key`` list by its ``of`` (name or mapping)."""
    rules = []
    for kind in _ELEMENT_KINDS:
        declared_as = {
            "anyOf": [
                {"const": kind},
                {"type": "object", "properties": {"type": {"const": kind}}, "required": ["type"]},
            ]
        }
        rules.append({
            "if": {"properties": {"of": declared_as}, "required": ["of"]},
            "then": {
                "properties": {value_key: {"description": description, "items": _value(kind)}},
            },
        })
    return rules


def _declaration(
    kinds: tuple[str, ...], what: str, extras: dict[str, Schema], value_key: str | None
) -> Schema:
    """A type declaration of one of ``kinds``: the kind's own keys plus ``extras``, nothing else."""
    rules = []
    for kind in kinds:
        properties: Schema = {
            "type": {"const": kind, "description": f"`{kind}`: {_KIND_TEXT[kind]}."},
            **_KIND_KEYS[kind],
            **extras,
        }
        then: Schema = {
            "properties": properties,
            "required": ["type", *_REQUIRED_KEYS.get(kind, [])],
            "additionalProperties": False,
        }
        if value_key is not None:
            text = extras[value_key]["description"]
            properties[value_key] = {**_value(kind), "description": text}
            if kind == "set":
                then["allOf"] = _set_items(value_key, text)
        rules.append({
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": then,
        })
    return {
        "description": what,
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {
                "description": "The kind of data: " + ", ".join(kinds) + ".",
                "enum": list(kinds),
            },
        },
        "allOf": rules,
    }


# --------------------------------------------------------------------------- the parts


def _state() -> Schema:
    return {
        "description": "A state. Write `{}` (or nothing) for a plain intermediate state.",
        "type": ["object", "null"],
        "maxProperties": MAX_ITEMS,
        "properties": {
            "initial": {
                "description": "Marks the one state every instance starts in.",
                "type": "boolean",
            },
            "terminal": {
                "description": "Makes the state terminal: `success`, or `failure` (fail-closed: "
                "the compensations owed are run before an instance rests there).",
                "enum": ["success", "failure", None],
            },
            "on_error": _optional(
                _names("", _ecma(IDENTIFIER)),
                "Overrides the workflow's `on_error` for this state: the failure terminal taken "
                "when an effect fails, a timeout expires or an operator aborts.",
            ),
            "timeout": _ref(
                "timeout",
                "Takes the error exit when the state lasts longer than `after`, or fires "
                "`event` as the system.",
            ),
            "description": _text("What the state means."),
        },
        "additionalProperties": False,
        "if": {
            "properties": {"terminal": {"enum": ["success", "failure"]}},
            "required": ["terminal"],
        },
        "then": {
            "properties": {
                "initial": {"description": "A terminal state cannot be initial.", "const": False},
                "on_error": {"description": "A terminal state has no `on_error`.", "type": "null"},
                "timeout": {"description": "A terminal state has no `timeout`.", "not": {}},
            },
        },
    }


def _timeout() -> Schema:
    return {
        "description": "A state timeout: `{after: 15m}` takes the error exit when it expires; "
        "`{after: 15m, event: remind}` fires that event as the system.",
        "type": "object",
        "maxProperties": MAX_ITEMS,
        "required": ["after"],
        "properties": {
            "after": {
                "description": "A positive duration such as `15m`, `1h30m` or `1d12h`, or a number "
                "of seconds.",
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_SECONDS},
                    {"type": "string", "pattern": DURATION_PATTERN},
                ],
            },
            "event": _optional(
                _names("", _ecma(IDENTIFIER)),
                "The event fired as the system when the timeout expires (instead of the "
                "error exit).",
            ),
        },
        "additionalProperties": False,
    }


def _transition() -> Schema:
    state = _names("A state name.", _ecma(IDENTIFIER))
    return {
        "description": "A transition: `event` moves an instance `from` a state `to` another.",
        "type": "object",
        "maxProperties": MAX_ITEMS,
        "required": ["event", "from", "to", "permission"],
        "properties": {
            "event": _names("The event that fires the transition.", _ecma(IDENTIFIER)),
            "from": {
                "description": "The state (or non-empty list of distinct states) it leaves from.",
                "anyOf": [
                    state,
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_ENTRIES,
                        "uniqueItems": True,
                        "items": state,
                    },
                ],
            },
            "to": _names(
                "The state it goes to (may equal `from`: a step that keeps the state).",
                _ecma(IDENTIFIER),
            ),
            "permission": _names(
                "The permission a caller needs (required; write `public` to let any caller "
                "fire it).",
                _ecma(DOTTED),
            ),
            "params": {
                "description": "Typed params of the event (a param with a `default` is optional).",
                "type": ["object", "null"],
                "maxProperties": MAX_ITEMS,
                "propertyNames": _unreserved(_ecma(IDENTIFIER)),
                "additionalProperties": {"$ref": "#/$defs/param"},
            },
            "guard": {
                "description": "A boolean expression that must hold for the transition to fire.",
                "type": ["string", "boolean", "null"],
            },
            "assign": {
                "description": "Variable → expression, evaluated when the transition fires.",
                "type": ["object", "null"],
                "maxProperties": MAX_ITEMS,
                "propertyNames": _names("", _ecma(IDENTIFIER)),
                "additionalProperties": {
                    "description": "An expression (or a literal list for a set variable).",
                    "type": ["string", "number", "boolean", "array"],
                    "items": {"type": ["string", "number", "boolean"]},
                },
            },
            "effect": _optional(
                _names("", _ecma(DOTTED)),
                "The side-effect handler run when the transition fires (bound at run time).",
            ),
            "compensate": _optional(
                _names("", _ecma(DOTTED)),
                "The handler that undoes the `effect` if the run later fails.",
            ),
            "irreversible": {
                "description": "Marks an `effect` that cannot be undone (no `compensate`).",
                "type": "boolean",
            },
            "description": _text("What the transition does."),
        },
        "additionalProperties": False,
        "allOf": [
            {
                "if": {
                    "properties": {"compensate": {"type": "string"}},
                    "required": ["compensate"],
                },
                "then": {
                    "required": ["effect"],
                    "properties": {
                        "effect": {
                            "description": "`compensate` needs an `effect` to undo.",
                            "type": "string",
                        },
                    },
                },
            },
            {
                "if": {
                    "properties": {"irreversible": {"const": True}},
                    "required": ["irreversible"],
                },
                "then": {
                    "required": ["effect"],
                    "properties": {
                        "effect": {
                            "description": "`irreversible` marks an `effect`.",
                            "type": "string",
                        },
                        "compensate": {
                            "description": "An irreversible effect cannot have a `compensate`.",
                            "type": "null",
                        },
                    },
                },
            },
        ],
    }


def _invariant() -> Schema:
    expression: Schema = {"type": ["string", "boolean"]}
    return {
        "description": "A named property the verifier proves: exactly one of `always`, `never` "
        "or `precedes`.",
        "type": "object",
        "maxProperties": MAX_ITEMS,
        "required": ["name"],
        "properties": {
            "name": _names("The property's name, e.g. `four-eyes`.", _ecma(PROPERTY_NAME)),
            "always": {
                **expression,
                "description": "A boolean expression over `state` and the variables that holds in "
                "every reachable state.",
            },
            "never": {
                **expression,
                "description": "A boolean expression that holds in no reachable state.",
            },
            "precedes": {
                "description": "`then` never fires unless `first` fired earlier on the same run.",
                "type": "object",
                "maxProperties": MAX_ITEMS,
                "required": ["first", "then"],
                "properties": {
                    "first": _names("The event that must come first.", _ecma(IDENTIFIER)),
                    "then": _names("The event that may only follow it.", _ecma(IDENTIFIER)),
                },
                "additionalProperties": False,
            },
            "description": _text("What the property means."),
        },
        "additionalProperties": False,
        "oneOf": [{"required": ["always"]}, {"required": ["never"]}, {"required": ["precedes"]}],
    }


def _waiver() -> Schema:
    return {
        "description": "An accepted finding of a check, with the reason it is accepted.",
        "type": "object",
        "maxProperties": MAX_ITEMS,
        "required": ["check", "target", "reason"],
        "properties": {
            "check": _names("The id of the check waived.", _ecma(PROPERTY_NAME)),
            "target": {
                "description": "The state, transition or property the waiver applies to.",
                "type": ["string", "integer"],
            },
            "reason": {
                "description": "Why the finding is accepted (required, not blank).",
                "type": "string",
                "pattern": r"\S",
            },
        },
        "additionalProperties": False,
    }


def _defs() -> Schema:
    param_kinds = tuple(kind for kind in KINDS if kind != "principal")
    return {
        "decimalValue": {
            "description": "An exact decimal: a number, or its text such as `\"19.99\"`.",
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": DECIMAL_PATTERN}],
        },
        "variable": _declaration(
            KINDS,
            "A typed variable: `type` and that kind's keys, plus `initial`, `context` and "
            "`description`.",
            {
                "initial": {"description": "The value the variable starts with."},
                "context": {
                    "description": "Supplied by the caller when an instance starts; cannot be "
                    "assigned afterwards.",
                    "type": "boolean",
                },
                "description": _text("What the variable holds."),
            },
            "initial",
        ),
        "param": _declaration(
            param_kinds,
            "A typed event param (never a principal: the actor is the authenticated caller).",
            {
                "default": {"description": "The value used when the caller omits the param."},
                "description": _text("What the param means."),
            },
            "default",
        ),
        "elementType": _declaration(_ELEMENT_KINDS, "The type of a set's elements.", {}, None),
        "state": _state(),
        "timeout": _timeout(),
        "transition": _transition(),
        "invariant": _invariant(),
        "waiver": _waiver(),
    }


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the railguard spec format, version 1.

    A fresh, JSON-serialisable dict on every call (callers may change it).
    """
    dotted = _names("", _ecma(DOTTED))
    schema: Schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "railguard spec",
        "description": "A railguard workflow spec (format version 1): roles, typed variables, "
        "states, transitions and the invariants the verifier proves.",
        "type": "object",
        "required": ["railguard", "name", "states"],
        "properties": {
            "railguard": {"description": "The format version: `1`.", "const": FORMAT_VERSION},
            "name": _names("The workflow's name.", _ecma(DOTTED)),
            "description": _text("What the workflow does."),
            "roles": {
                "description": "Role → the permissions it grants (RBAC). A principal holds one or "
                "more roles.",
                "type": "object",
                "maxProperties": MAX_ITEMS,
                "propertyNames": dotted,
                "additionalProperties": {
                    "description": "The permissions the role grants (distinct; never `public`).",
                    "type": ["array", "null"],
                    "maxItems": MAX_ENTRIES,
                    "uniqueItems": True,
                    "items": {**dotted, "not": {"const": "public"}},
                },
            },
            "variables": {
                "description": "Typed data: int, decimal, bool, enum, str, principal, or a set of "
                "one of those.",
                "type": "object",
                "maxProperties": MAX_ITEMS,
                "propertyNames": _unreserved(_ecma(IDENTIFIER)),
                "additionalProperties": {"$ref": "#/$defs/variable"},
            },
            "states": {
                "description": "The states: exactly one `initial: true`; terminals are "
                "`terminal: success` or `terminal: failure`.",
                "type": "object",
                "minProperties": 1,
                "maxProperties": MAX_ITEMS,
                "propertyNames": _names("", _ecma(IDENTIFIER)),
                "additionalProperties": {"$ref": "#/$defs/state"},
            },
            "on_error": _optional(
                _names("", _ecma(IDENTIFIER)),
                "The failure terminal an instance goes to when an effect fails, a timeout expires "
                "or an operator aborts (a state may override it).",
            ),
            "transitions": {
                "description": "The transitions: each an `event` from a state to a state, under a "
                "`permission`.",
                "type": "array",
                "items": {"$ref": "#/$defs/transition"},
            },
            "invariants": {
                "description": "Named properties: `always`, `never` or `precedes`.",
                "type": ["array", "null"],
                "items": {"$ref": "#/$defs/invariant"},
            },
            "exclusive_roles": {
                "description": "Groups of roles no principal may hold together (separation of "
                "duties).",
                "type": ["array", "null"],
                "items": {"type": "array", "minItems": 2, "items": dotted},
            },
            "waivers": {
                "description": "Accepted findings: `{check, target, reason}`.",
                "type": ["array", "null"],
                "items": {"$ref": "#/$defs/waiver"},
            },
        },
        "additionalProperties": False,
        "$defs": _defs(),
    }
    # Parts such as the per-kind keys are shared module constants: hand out a private copy.
    return copy.deepcopy(schema)
