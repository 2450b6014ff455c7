"""Validating plain data (from YAML, JSON or the builder) into a :class:`~railguard.spec.Spec`.

Every problem is collected with its file, line, column and the id of the offending part,
and reported together in one :class:`LoadError` (the first :data:`~railguard.spec.limits.MAX_PROBLEMS`
of them); nothing half-built ever escapes. Every size is held to :mod:`railguard.spec.limits`,
and the work is linear in the size of the document.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path as FilePath
from typing import Any, Literal, cast

from .errors import ExpressionError, LoadError, Location, Problem
from .expr import (
    RESERVED_NAMES,
    ExprType,
    Node,
    Scope,
    Var,
    assignable,
    check,
    children,
    parse,
)
from .expr import Literal as LiteralNode
from .limits import (
    MAX_BYTES,
    MAX_DURATION_SECONDS,
    MAX_ENTRIES,
    MAX_HINT_WORK,
    MAX_NAME_LENGTH,
    MAX_PLACES,
    MAX_PROBLEMS,
)
from .model import (
    FORMAT_VERSION,
    PUBLIC,
    Expression,
    Invariant,
    Parameter,
    Role,
    Spec,
    State,
    Timeout,
    Transition,
    Variable,
    Waiver,
)
from .source import (
    Document,
    collection_paused,
    decimal_problem,
    far_exponent,
    one_line,
    read_data,
    read_text,
)
from .types import KINDS, Type, Value, list_values

__all__ = ["load", "load_data", "loads"]

Path = tuple[str | int, ...]

# Anchored with `\A`/`\Z` (and used with `fullmatch`): `$` would also match before a final
# line break, and a name such as "draft\n" must be refused. The JSON Schema turns these into
# ECMA-262 patterns (`^`/`$`) in `railguard.spec.schema`.
IDENTIFIER = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
DOTTED = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(?:[.:-][A-Za-z0-9_]+)*\Z")
PROPERTY_NAME = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
NAME_RULES = {
    IDENTIFIER.pattern: "use letters, digits and `_`, not starting with a digit",
    DOTTED.pattern: "use letters, digits and `_`, in parts joined by `.`, `:` or `-`",
    PROPERTY_NAME.pattern: "use letters, digits, `_`, `.` and `-`",
}
DURATION = re.compile(r"\A(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?\Z")

TOP_KEYS = (
    "railguard",
    "name",
    "description",
    "roles",
    "variables",
    "states",
    "on_error",
    "transitions",
    "invariants",
    "exclusive_roles",
    "waivers",
)
STATE_KEYS = ("initial", "terminal", "on_error", "timeout", "description")
TRANSITION_KEYS = (
    "event",
    "from",
    "to",
    "permission",
    "params",
    "guard",
    "assign",
    "effect",
    "compensate",
    "irreversible",
    "description",
)
INVARIANT_KEYS = ("name", "always", "never", "precedes", "description")
TYPE_KEYS: Mapping[str, tuple[str, ...]] = {
    "int": ("min", "max"),
    "decimal": ("min", "max", "places"),
    "bool": (),
    "enum": ("values",),
    "str": ("max_length",),
    "principal": (),
    "set": ("of", "max_size"),
}
#: Entries of one mapping (states, variables, ...); documents are bounded by their size first.
MAX_ITEMS = 10_000_000


def load(path: str | os.PathLike[str]) -> Spec:
    """Load a spec from a ``.yaml``, ``.yml`` or ``.json`` file, else raise :class:`LoadError`."""
    name = os.fspath(path)
    try:
        with FilePath(name).open("rb") as stream:
            # Read one byte past the bound, never more: a huge file (or /dev/zero) costs nothing.
            raw = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else "cannot be read"
        raise LoadError([Problem(f"cannot read the file: {reason}", Location(name))]) from None
    if len(raw) > MAX_BYTES:
        raise LoadError(
            [
                Problem(
                    f"the file is larger than {MAX_BYTES:,} bytes, the largest a spec may be",
                    Location(name, 1, 1),
                )
            ]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = raw.count(b"\n", 0, start) + 1
        column = len(raw[raw.rfind(b"\n", 0, start) + 1 : start].decode("utf-8", "replace")) + 1
        raise LoadError(
            [
                Problem(
                    f"the file is not UTF-8 text: byte 0x{raw[start]:02x} cannot start a character",
                    Location(name, line, column),
                )
            ]
        ) from None
    return loads(text, name)


def loads(text: str, file: str = "<spec>", fmt: Literal["yaml", "json"] | None = None) -> Spec:
    """Load a spec from YAML or JSON text (``fmt`` defaults by the file name, else YAML)."""
    with collection_paused():
        doc = read_text(text, file, fmt)
        return _Validator(doc).spec()


def load_data(data: Mapping[str, Any], file: str = "<data>") -> Spec:
    """Validate already-parsed plain data (dicts, lists, scalars) into a spec."""
    with collection_paused():
        return _Validator(read_data(data, file)).spec()


# --------------------------------------------------------------------------- validator


class _Skip(Exception):
    """Raised internally to abandon one part after its problem was recorded."""


class _Validator:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        # Names declared in the document even where their declaration had a problem: a
        # reference to one of them is not reported again as unknown (no cascades).
        self.broken_variables: set[str] = set()
        self.broken_roles: set[str] = set()
        self.declared_states: tuple[str, ...] = ()
        self.declared_state_set: frozenset[str] = frozenset()
        self.failed_events: set[str] = set()
        self.hint_work = 0
        self.var_types: dict[str, Type] = {}
        self.var_map: dict[str, Variable] = {}

    # ------------------------------------------------------------------ reporting

    def loc(self, path: Path, *, key: bool = False) -> Location:
        found = self.doc.at(path, key=key)
        return Location(found.file, found.line, found.column, path)

    def fail(self, path: Path, message: str, *, key: bool = False) -> _Skip:
        self.add(Problem(one_line(message), self.loc(path, key=key)))
        return _Skip()

    def add(self, problem: Problem) -> None:
        """Record ``problem``; stop loading once :data:`MAX_PROBLEMS` are recorded."""
        self.problems.append(problem)
        if len(self.problems) >= MAX_PROBLEMS:
            raise self.abort()

    def hint(self, name: Any, known: Iterable[str]) -> str:
        """`` (did you mean `x`?)`` for a misspelt ``name``, within the load's hint budget.

        Hints cost a comparison per candidate; a document with thousands of misspelt names
        and thousands of states gets hints for the first ones only (:data:`MAX_HINT_WORK`).
        """
        if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
            return ""
        candidates = known if isinstance(known, list | tuple) else list(known)
        self.hint_work += len(candidates)
        if self.hint_work > MAX_HINT_WORK:
            return ""
        close = difflib.get_close_matches(name, candidates, n=1)
        return f" (did you mean `{close[0]}`?)" if close else ""

    def abort(self) -> LoadError:
        """The error to raise now, with the problems found so far in source order."""
        self.problems.sort(key=lambda p: (p.location.line, p.location.column))
        return LoadError(self.problems)

    def keys(
        self, data: Mapping[str, Any], allowed: Iterable[str], path: Path, owner: str
    ) -> set[str]:
        """Report unknown keys; return the known keys suggested for misspelt ones."""
        allowed = tuple(allowed)
        suggested: set[str] = set()
        for key in data:
            if key not in allowed:
                text = str(key)
                close = (
                    difflib.get_close_matches(text, allowed, n=1)
                    if len(text) <= MAX_NAME_LENGTH
                    else []
                )
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                expected = "" if hint else f"; expected one of {', '.join(allowed)}"
                suggested.update(close)
                shown = _show(text)
                self.fail((*path, key), f"{owner}: unknown key {shown}{hint}{expected}", key=True)
        return suggested

    def mapping(
        self, value: Any, path: Path, owner: str, what: str = "a mapping"
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"{owner} must be {what}, not {_kind(value)}")
        if len(value) > MAX_ITEMS:
            raise self.fail(path, f"{owner} has more than {MAX_ITEMS:,} entries")
        return value

    def name(
        self,
        value: Any,
        path: Path,
        owner: str,
        what: str,
        pattern: re.Pattern[str] = IDENTIFIER,
        *,
        key: bool = False,
    ) -> str:
        """``value`` if it is a valid name of the kind ``what``, else report it and skip."""
        prefix = f"{owner}: " if owner else ""
        if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
            raise self.fail(
                path,
                f"{prefix}the {what} name {_show(value)} is longer than "
                f"{MAX_NAME_LENGTH} characters",
                key=key,
            )
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        if value is not None and not isinstance(value, str):
            shown = f" {_show(value)}" if _is_scalar(value) else ""
            message = f"{prefix}the {what} name{shown} must be text, not {_kind(value)}"
        else:
            shown = _show(value) if value is not None else "an empty value"
            rule = NAME_RULES[pattern.pattern]
            message = f"{prefix}{shown} is not a valid {what} name ({rule})"
        raise self.fail(path, message, key=key)

    # ------------------------------------------------------------------ top level

    def spec(self) -> Spec:
        data = self.doc.data
        if not isinstance(data, dict):
            self.fail(
                (),
                "a spec must be a mapping with keys such as `railguard`, `name` and `states`, "
                f"not {_kind(data)}",
            )
            raise self.abort()
        suggested = self.keys(data, TOP_KEYS, (), "the spec")
        version = data.get("railguard")
        if "railguard" not in data:
            if "railguard" not in suggested:
                self.fail((), "the spec must start with the format version `railguard: 1`")
        elif version != FORMAT_VERSION or isinstance(version, bool):
            self.fail(
                ("railguard",),
                f"unsupported format version {_show(version)}: "
                f"this railguard reads version {FORMAT_VERSION}",
            )
            raise self.abort()
        name = "spec"
        try:
            if "name" not in data:
                if "name" in suggested:
                    raise _Skip()
                raise self.fail((), "the spec needs a `name`")
            name = self.name(data["name"], ("name",), "", "spec", DOTTED)
        except _Skip:
            pass
        description = self.text(data.get("description", ""), ("description",), "the spec")
        roles = self.roles(data.get("roles", {}))
        variables = self.variables(data.get("variables", {}))
        if "states" not in data and "states" in suggested:
            raise self.abort()
        states = self.states(data.get("states"))
        on_error = self.on_error(data, states)
        var_types = {v.name: v.type for v in variables}
        transitions = self.transitions(data.get("transitions", []), variables)
        # The facts the cross-checks need, computed once on the model (as every consumer does).
        draft = Spec(name, description, roles, variables, states, transitions, on_error=on_error)
        self.check_timeouts(draft)
        invariants = self.invariants(data.get("invariants", []), var_types, transitions)
        exclusive = self.exclusive(data.get("exclusive_roles", []), roles)
        waivers = self.waivers(data.get("waivers", []))
        if self.problems:
            raise self.abort()
        locations = {
            path: Location(loc.file, loc.line, loc.column, path)
            for path, loc in self.doc.values.items()
        }
        return Spec(
            name=name,
            description=description,
            roles=roles,
            variables=variables,
            states=states,
            transitions=transitions,
            invariants=invariants,
            on_error=on_error,
            exclusive_roles=exclusive,
            waivers=waivers,
            source=self.doc.file,
            locations=locations,
        )

    def text(self, value: Any, path: Path, owner: str, label: str = "description") -> str:
        """Free text (empty when not given); anything else, a number too, is reported."""
        if value is None:
            return ""
        if not isinstance(value, str):
            self.fail(path, f"{owner}: `{label}` must be text, not {_kind(value)}")
            return ""
        return value

    # ------------------------------------------------------------------ roles

    def roles(self, raw: Any) -> tuple[Role, ...]:
        try:
            data = self.mapping(
                raw, ("roles",), "`roles`", "a mapping of role names to lists of permissions"
            )
        except _Skip:
            return ()
        roles = []
        for role_name, raw_perms in data.items():
            path: Path = ("roles", role_name)
            try:
                self.name(role_name, path, "", "role", DOTTED, key=True)
                perms = [] if raw_perms is None else raw_perms
                if not isinstance(perms, list):
                    raise self.fail(
                        path, f"role `{role_name}` must list its permissions, not {_kind(perms)}"
                    )
                if len(perms) > MAX_ENTRIES:
                    raise self.fail(
                        path,
                        f"role `{role_name}` lists {len(perms):,} permissions, "
                        f"more than the {MAX_ENTRIES:,} a role may grant",
                    )
                seen: dict[str, None] = {}
                for index, perm in enumerate(perms):
                    try:
                        self.name(perm, (*path, index), f"role `{role_name}`", "permission", DOTTED)
                    except _Skip:
                        continue
                    if perm == PUBLIC:
                        self.fail(
                            (*path, index),
                            f"role `{role_name}`: `public` is granted to every caller "
                            "and cannot be listed in a role",
                        )
                    elif perm in seen:
                        self.fail(
                            (*path, index), f"role `{role_name}` lists permission `{perm}` twice"
                        )
                    else:
                        seen[perm] = None
                roles.append(Role(role_name, tuple(seen)))
            except _Skip:
                self.broken_roles.add(str(role_name))
                continue
        return tuple(roles)

    # ------------------------------------------------------------------ types

    def type_spec(
        self, raw: Any, path: Path, owner: str, *, extra: tuple[str, ...], element: bool = False
    ) -> tuple[Type, dict[str, Any]]:
        if isinstance(raw, str) and element:
            raw = {"type": raw}
        data = self.mapping(raw, path, owner, "a mapping with a `type`")
        kind = data.get("type")
        if kind is None:
            raise self.fail(path, f"{owner} needs a `type` (one of {', '.join(KINDS)})")
        if not isinstance(kind, str):
            raise self.fail(
                (*path, "type"),
                f"{owner}: `type` must be text naming a type (one of {', '.join(KINDS)}), "
                f"not {_kind(kind)}",
            )
        if kind not in KINDS:
            close = difflib.get_close_matches(str(kind), KINDS, n=1)
            hint = (
                f" (did you mean `{close[0]}`?)"
                if close
                else f"; expected one of {', '.join(KINDS)}"
            )
            raise self.fail((*path, "type"), f"{owner}: unknown type `{kind}`{hint}")
        if element and kind == "set":
            raise self.fail((*path, "type"), f"{owner}: sets of sets are not supported")
        allowed = ("type", *TYPE_KEYS[kind], *extra)
        self.keys(data, allowed, path, owner)
        low: int | Decimal | None = None
        high: int | Decimal | None = None
        places = max_length = max_size = None
        values: tuple[str, ...] = ()
        of: Type | None = None
        if kind == "int":
            low = self.integer(data.get("min"), (*path, "min"), owner, "min")
            high = self.integer(data.get("max"), (*path, "max"), owner, "max")
        elif kind == "decimal":
            places = self.integer(data.get("places"), (*path, "places"), owner, "places", minimum=0)
            if places is not None and places > MAX_PLACES:
                raise self.fail(
                    (*path, "places"), f"{owner}: `places` must be at most {MAX_PLACES}"
                )
            low = self.decimal(data.get("min"), (*path, "min"), owner, "min")
            high = self.decimal(data.get("max"), (*path, "max"), owner, "max")
        elif kind == "enum":
            raw_values = data.get("values")
            if not isinstance(raw_values, list) or not raw_values:
                raise self.fail(
                    (*path, "values") if "values" in data else path,
                    f"{owner}: an enum needs a non-empty list of `values`, or its domain is empty",
                )
            if len(raw_values) > MAX_ENTRIES:
                raise self.fail(
                    (*path, "values"),
                    f"{owner}: an enum lists {len(raw_values):,} values, "
                    f"more than the {MAX_ENTRIES:,} an enum may have",
                )
            seen: dict[str, None] = {}
            for index, item in enumerate(raw_values):
                if not isinstance(item, str):
                    shown = f" {_show(item)}" if _is_scalar(item) else ""
                    raise self.fail(
                        (*path, "values", index),
                        f"{owner}: enum value{shown} must be text, not {_kind(item)}",
                    )
                if not item:
                    raise self.fail(
                        (*path, "values", index), f"{owner}: an enum value must be non-empty text"
                    )
                if item in seen:
                    raise self.fail(
                        (*path, "values", index),
                        f"{owner}: enum value {_show(item)} is listed twice",
                    )
                seen[item] = None
            values = tuple(seen)
        elif kind == "str":
            max_length = self.integer(
                data.get("max_length"), (*path, "max_length"), owner, "max_length", minimum=0
            )
        elif kind == "set":
            if "of" not in data:
                raise self.fail(path, f"{owner}: a set needs `of`, the type of its elements")
            of, _ = self.type_spec(
                data["of"], (*path, "of"), f"{owner} (element type)", extra=(), element=True
            )
            max_size = self.integer(
                data.get("max_size"), (*path, "max_size"), owner, "max_size", minimum=0
            )
        if low is not None and high is not None and low > high:
            raise self.fail(
                path, f"{owner}: `min` {low} is greater than `max` {high}, so its domain is empty"
            )
        if kind == "decimal" and places is not None:
            for bound, label in ((low, "min"), (high, "max")):
                if bound is not None and not Type("decimal", places=places).contains(bound):
                    raise self.fail(
                        (*path, label),
                        f"{owner}: `{label}` {bound} has more than {places} decimal places",
                    )
        declared = Type(kind, low, high, places, values, max_length, of, max_size)
        return declared, data

    def integer(
        self, value: Any, path: Path, owner: str, label: str, minimum: int | None = None
    ) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"{owner}: `{label}` must be an integer, not {_show(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"{owner}: `{label}` must be at least {minimum}")
        return value

    def decimal(self, value: Any, path: Path, owner: str, label: str) -> Decimal | None:
        if value is None:
            return None
        dec = _to_decimal(value)
        if isinstance(value, str) and far_exponent(value):
            dec = _FAR
        if dec is None:
            raise self.fail(path, f"{owner}: `{label}` must be a number, not {_show(value)}")
        problem = decimal_problem(dec, _show(value))
        if problem is not None:
            raise self.fail(path, f"{owner}: `{label}`: {problem}")
        return dec

    def value(self, raw: Any, declared: Type, path: Path, owner: str, label: str) -> Value:
        """Convert a literal from the document into a value of ``declared``; report if outside."""
        kind = declared.kind
        converted: Any = raw
        if kind == "decimal":
            converted = _to_decimal(raw)
            if isinstance(raw, str) and far_exponent(raw):
                converted = _FAR
            problem = None if converted is None else decimal_problem(converted, _show(raw))
            if problem is not None:
                raise self.fail(path, f"{owner}: `{label}`: {problem}")
        elif kind == "set":
            if not isinstance(raw, list):
                raise self.fail(path, f"{owner}: `{label}` must be a list, not {_show(raw)}")
            if len(raw) > MAX_ENTRIES:
                raise self.fail(
                    path,
                    f"{owner}: `{label}` lists {len(raw):,} elements, "
                    f"more than the {MAX_ENTRIES:,} a set value may have",
                )
            assert declared.of is not None
            items = [
                self.value(item, declared.of, (*path, i), owner, label)
                for i, item in enumerate(raw)
            ]
            converted = frozenset(cast(Any, items))
        elif kind == "principal" and raw is not None:
            raise self.fail(path, f"{owner}: a principal starts unset; `{label}` cannot name one")
        if not _fits_kind(raw, kind):
            raise self.fail(
                path,
                f"{owner}: `{label}` must be {_kind_text(declared)}, "
                f"not {_show(raw)}{_yaml11(raw, kind)}",
            )
        if kind == "enum" and raw not in declared.values:
            hint = self.hint(raw, declared.values)
            raise self.fail(
                path,
                f"{owner}: `{label}` {_show(raw)} is not one of "
                f"{list_values(declared.values)}{hint}",
            )
        if (
            kind == "decimal"
            and declared.places is not None
            and isinstance(converted, Decimal)
            and not Type("decimal", places=declared.places).contains(converted)
        ):
            raise self.fail(
                path,
                f"{owner}: `{label}` {_show(raw)} has more than {declared.places} decimal "
                "places, the most its type allows",
            )
        if (converted is None and kind != "principal") or not declared.contains(converted):
            raise self.fail(
                path,
                f"{owner}: `{label}` {_show(raw)} is outside its domain ({declared.describe()})",
            )
        return cast(Value, converted)

    # ------------------------------------------------------------------ variables

    def variables(self, raw: Any) -> tuple[Variable, ...]:
        try:
            data = self.mapping(
                raw, ("variables",), "`variables`", "a mapping of variable names to types"
            )
        except _Skip:
            return ()
        result = []
        for name, body in data.items():
            path: Path = ("variables", name)
            owner = f"variable `{name}`"
            try:
                self.name(name, path, "", "variable", key=True)
                if name in RESERVED_NAMES:
                    raise self.fail(
                        path, f"`{name}` is reserved and cannot name a variable", key=True
                    )
                declared, spec = self.type_spec(
                    body, path, owner, extra=("initial", "context", "description")
                )
                context = spec.get("context", False)
                if not isinstance(context, bool):
                    raise self.fail((*path, "context"), f"{owner}: `context` must be true or false")
                if "initial" in spec:
                    initial = self.value(
                        spec["initial"], declared, (*path, "initial"), owner, "initial"
                    )
                elif context:
                    # A context variable without `initial` must be supplied when an instance starts.
                    initial = None
                else:
                    initial = _default(declared)
                    if not declared.contains(initial):
                        raise self.fail(
                            path,
                            f"{owner} needs an `initial` value, because the default "
                            f"{_show(initial)} is outside its domain ({declared.describe()})",
                        )
                description = self.text(spec.get("description", ""), (*path, "description"), owner)
                result.append(Variable(name, declared, initial, context, description))
            except _Skip:
                self.broken_variables.add(str(name))
                continue
        return tuple(result)

    # ------------------------------------------------------------------ states

    def states(self, raw: Any) -> tuple[State, ...]:
        if raw is None:
            self.fail((), "the spec needs `states`, with exactly one marked `initial: true`")
            raise self.abort()
        try:
            data = self.mapping(raw, ("states",), "`states`", "a mapping of state names")
        except _Skip:
            raise self.abort() from None
        if not data:
            self.fail(("states",), "the spec declares no states", key=True)
            raise self.abort()
        self.declared_states = tuple(
            n for n in data if isinstance(n, str) and IDENTIFIER.fullmatch(n)
        )
        self.declared_state_set = frozenset(self.declared_states)
        result: list[State] = []
        for name, raw_body in data.items():
            path: Path = ("states", name)
            owner = f"state `{name}`"
            try:
                self.name(name, path, "", "state", key=True)
                body = self.mapping({} if raw_body is None else raw_body, path, owner)
                self.keys(body, STATE_KEYS, path, owner)
                initial = body.get("initial", False)
                if not isinstance(initial, bool):
                    raise self.fail((*path, "initial"), f"{owner}: `initial` must be true or false")
                terminal = body.get("terminal")
                if terminal not in (None, "success", "failure"):
                    raise self.fail(
                        (*path, "terminal"),
                        f"{owner}: `terminal` must be `success` or `failure`, "
                        f"not {_show(terminal)}",
                    )
                if initial and terminal is not None:
                    raise self.fail(path, f"{owner} cannot be both initial and terminal")
                on_error = body.get("on_error")
                if on_error is not None and not isinstance(on_error, str):
                    raise self.fail((*path, "on_error"), f"{owner}: `on_error` must name a state")
                if on_error is not None and terminal is not None:
                    raise self.fail(
                        (*path, "on_error"), f"{owner} is terminal and cannot have an `on_error`"
                    )
                timeout = (
                    self.timeout(body.get("timeout"), (*path, "timeout"), owner)
                    if "timeout" in body
                    else None
                )
                if timeout is not None and terminal is not None:
                    raise self.fail(
                        (*path, "timeout"), f"{owner} is terminal and cannot have a `timeout`"
                    )
                description = self.text(body.get("description", ""), (*path, "description"), owner)
                result.append(
                    State(name, initial, cast(Any, terminal), on_error, timeout, description)
                )
            except _Skip:
                continue
        initial_states = [s for s in result if s.initial]
        if len(result) == len(data):
            if not initial_states:
                self.fail(
                    ("states",),
                    "no state is marked `initial: true`, and exactly one must be",
                    key=True,
                )
            elif len(initial_states) > 1:
                names = ", ".join(f"`{s.name}`" for s in initial_states)
                self.fail(
                    ("states", initial_states[1].name),
                    f"more than one state is marked initial ({names}), and exactly one must be",
                    key=True,
                )
        by_name = {state.name: state for state in result}
        for state in result:
            if state.on_error is not None:
                self.error_target(
                    state.on_error,
                    ("states", state.name, "on_error"),
                    f"state `{state.name}`: ",
                    by_name,
                )
        return tuple(result)

    def timeout(self, raw: Any, path: Path, owner: str) -> Timeout:
        data = self.mapping(raw, path, f"{owner}: `timeout`", "a mapping with `after`")
        self.keys(data, ("after", "event"), path, f"{owner}: `timeout`")
        after = data.get("after")
        seconds = _duration(after)
        if seconds is not None and seconds > MAX_DURATION_SECONDS:
            raise self.fail(
                (*path, "after"),
                f"{owner}: timeout `after` {_show(after)} is longer than the longest timeout, "
                f"`{MAX_DURATION_SECONDS // 86_400}d` (about ten years)",
            )
        if seconds is None or seconds <= 0:
            raise self.fail(
                (*path, "after"),
                f"{owner}: timeout `after` must be a positive duration "
                f"such as `15m`, `2h` or `1d12h`, not {_show(after)}",
            )
        event = data.get("event")
        if event is not None:
            self.name(event, (*path, "event"), f"{owner}: timeout", "event")
        return Timeout(seconds, event)

    def error_target(
        self, name: str, path: Path, prefix: str, states: Mapping[str, State]
    ) -> None:
        target = states.get(name)
        if target is None:
            if name not in self.declared_state_set:
                hint = self.hint(name, self.declared_states)
                self.fail(path, f"{prefix}`on_error` names unknown state `{name}`{hint}")
        elif target.terminal != "failure":
            what = "a success terminal" if target.terminal == "success" else "not a terminal"
            self.fail(
                path,
                f"{prefix}`on_error` names `{name}`, which is {what}; "
                "it must name a failure terminal (`terminal: failure`)",
            )

    def on_error(self, data: Mapping[str, Any], states: tuple[State, ...]) -> str | None:
        raw = data.get("on_error")
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.fail(("on_error",), f"`on_error` must name a failure terminal, not {_show(raw)}")
            return None
        self.error_target(raw, ("on_error",), "", {state.name: state for state in states})
        return raw

    def check_timeouts(self, draft: Spec) -> None:
        for state in draft.states:
            if state.timeout is None or state.timeout.event is None:
                continue
            event = state.timeout.event
            if event in self.failed_events:
                continue
            path: Path = ("states", state.name, "timeout", "event")
            fired = [t for t in draft.transitions_from(state.name) if t.event == event]
            if not fired:
                self.fail(
                    path,
                    f"state `{state.name}`: timeout event `{event}` has no transition "
                    f"from `{state.name}`",
                )
            elif any(p.required for p in draft.signature(event).values()):
                self.fail(
                    path,
                    f"state `{state.name}`: timeout event `{event}` has required params, "
                    "which the system cannot supply",
                )

    # ------------------------------------------------------------------ transitions

    def transitions(self, raw: Any, variables: tuple[Variable, ...]) -> tuple[Transition, ...]:
        if not isinstance(raw, list):
            self.fail(("transitions",), f"`transitions` must be a list, not {_kind(raw)}")
            return ()
        result: list[Transition] = []
        first_of_event: dict[str, Transition] = {}
        self.var_types = {v.name: v.type for v in variables}
        self.var_map = {v.name: v for v in variables}
        for position, body in enumerate(raw):
            path: Path = ("transitions", position)
            index = position + 1
            event = body.get("event") if isinstance(body, dict) else None
            named = isinstance(event, str) and IDENTIFIER.fullmatch(event) is not None
            owner = f"transition {index} (`{event}`)" if named else f"transition {index}"
            try:
                transition = self.transition(body, path, index, owner, variables)
            except _Skip:
                if named:
                    self.failed_events.add(cast(str, event))
                continue
            first = first_of_event.setdefault(transition.event, transition)
            if first.signature != transition.signature:
                # The runtime checks params per event, and a plan offers one tool per event.
                where = (*path, "params") if "params" in body else path
                self.fail(
                    where,
                    f"{owner}: params differ from transition {first.index} (`{first.event}`); "
                    "every transition of an event takes the same params",
                )
            result.append(transition)
        return tuple(result)

    def transition(
        self, raw: Any, path: Path, index: int, owner: str, variables: tuple[Variable, ...]
    ) -> Transition:
        states = self.declared_states
        known = self.declared_state_set
        data = self.mapping(raw, path, owner)
        suggested = self.keys(data, TRANSITION_KEYS, path, owner)
        for required in ("event", "from", "to", "permission"):
            if required not in data:
                if required in suggested:
                    raise _Skip()
                extra = ""
                if required == "permission":
                    extra = " (write `permission: public` to let any caller fire it)"
                raise self.fail(path, f"{owner} needs `{required}`{extra}")
        event = self.name(data["event"], (*path, "event"), owner, "event")
        raw_sources = data["from"]
        source_list = raw_sources if isinstance(raw_sources, list) else [raw_sources]
        if not source_list:
            raise self.fail((*path, "from"), f"{owner}: `from` lists no state")
        if len(source_list) > MAX_ENTRIES:
            raise self.fail(
                (*path, "from"),
                f"{owner}: `from` lists {len(source_list):,} states, "
                f"more than the {MAX_ENTRIES:,} a transition may start from",
            )
        sources: dict[str, None] = {}
        for i, src in enumerate(source_list):
            spath = (*path, "from", i) if isinstance(raw_sources, list) else (*path, "from")
            if not isinstance(src, str) or src not in known:
                hint = self.hint(src, states)
                raise self.fail(spath, f"{owner}: `from` names unknown state {_show(src)}{hint}")
            if src in sources:
                raise self.fail(spath, f"{owner}: `from` lists state `{src}` twice")
            sources[src] = None
        target = data["to"]
        if not isinstance(target, str) or target not in known:
            hint = self.hint(target, states)
            raise self.fail(
                (*path, "to"), f"{owner}: `to` names unknown state {_show(target)}{hint}"
            )
        permission = self.name(
            data["permission"], (*path, "permission"), owner, "permission", DOTTED
        )
        params = self.params(data.get("params", {}), (*path, "params"), owner)
        scope = Scope(self.var_types, states, {p.name: p.type for p in params}, allow_actor=True)
        guard = None
        if "guard" in data and data["guard"] is not None:
            guard = self.expression(
                data["guard"], (*path, "guard"), owner, "guard", scope, want="bool"
            )
        assign = self.assignments(
            data.get("assign", {}), (*path, "assign"), owner, scope, variables
        )
        effect = self.handler(data.get("effect"), (*path, "effect"), owner, "effect")
        compensate = self.handler(
            data.get("compensate"), (*path, "compensate"), owner, "compensate"
        )
        irreversible = data.get("irreversible", False)
        if not isinstance(irreversible, bool):
            raise self.fail(
                (*path, "irreversible"), f"{owner}: `irreversible` must be true or false"
            )
        if compensate is not None and effect is None:
            raise self.fail(
                (*path, "compensate"), f"{owner}: `compensate` needs an `effect` to undo"
            )
        if irreversible and effect is None:
            raise self.fail(
                (*path, "irreversible"),
                f"{owner}: `irreversible` marks an `effect`, and there is none",
            )
        if irreversible and compensate is not None:
            raise self.fail(
                (*path, "irreversible"),
                f"{owner}: an irreversible effect cannot have a `compensate`",
            )
        description = self.text(data.get("description", ""), (*path, "description"), owner)
        return Transition(
            index=index,
            event=event,
            sources=tuple(sources),
            target=target,
            permission=permission,
            params=params,
            guard=guard,
            assign=assign,
            effect=effect,
            compensate=compensate,
            irreversible=irreversible,
            description=description,
        )

    def handler(self, raw: Any, path: Path, owner: str, label: str) -> str | None:
        if raw is None:
            return None
        return self.name(raw, path, f"{owner}: `{label}`", "handler", DOTTED)

    def params(self, raw: Any, path: Path, owner: str) -> tuple[Parameter, ...]:
        if raw is None:
            return ()
        data = self.mapping(raw, path, f"{owner}: `params`", "a mapping of param names to types")
        result = []
        for name, body in data.items():
            ppath = (*path, name)
            powner = f"{owner}: param `{name}`"
            self.name(name, ppath, owner, "param", key=True)
            if name in RESERVED_NAMES:
                raise self.fail(
                    ppath, f"{owner}: `{name}` is reserved and cannot name a param", key=True
                )
            declared, spec = self.type_spec(body, ppath, powner, extra=("default", "description"))
            if declared.kind == "principal":
                raise self.fail(
                    ppath,
                    f"{powner}: a param cannot be a principal, "
                    "because the actor is the authenticated caller",
                )
            self.text(spec.get("description"), (*ppath, "description"), powner)
            if "default" in spec:
                default = self.value(
                    spec["default"], declared, (*ppath, "default"), powner, "default"
                )
                result.append(Parameter(name, declared, False, default))
            else:
                result.append(Parameter(name, declared))
        return tuple(result)

    def expression(
        self, raw: Any, path: Path, owner: str, label: str, scope: Scope, want: str | None = None
    ) -> Expression:
        expr, kind = self.typed_expression(raw, path, owner, label, scope)
        if want is not None and kind.kind != want:
            raise self.fail(path, f"{owner}: the {label} must be {want}, not {kind.describe()}")
        return expr

    def typed_expression(
        self, raw: Any, path: Path, owner: str, label: str, scope: Scope
    ) -> tuple[Expression, ExprType]:
        if isinstance(raw, bool):
            raw = "True" if raw else "False"
        elif isinstance(raw, int | Decimal):
            raw = str(raw)
        elif isinstance(raw, float):
            raw = repr(raw)  # only from Python data (`load_data`)
        if not isinstance(raw, str):
            raise self.fail(path, f"{owner}: the {label} must be an expression, not {_kind(raw)}")
        tree = None
        try:
            tree = parse(raw)
            _refuse_surrogates(tree)
            kind = check(tree, scope)
        except ExpressionError as exc:
            if tree is not None and self.broken_variables & _variable_names(tree):
                # The variable's own declaration was already reported.
                raise _Skip() from None
            message = one_line(f"{owner}, {label}: {_one_sentence(exc.message)}")
            self.add(Problem(message, self.expr_loc(path, exc)))
            raise _Skip() from None
        return Expression(tree, raw), kind

    def expr_loc(self, path: Path, exc: ExpressionError) -> Location:
        """The file position of an error at ``exc.line``/``exc.column`` inside an expression."""
        base = self.loc(path)
        block = self.doc.block_starts.get(path)
        if block is not None:
            return Location(
                base.file, block.line + exc.line - 1, block.column + exc.column - 1, path
            )
        offset = self.doc.scalar_offsets.get(path)
        if base.line and offset is not None and exc.line == 1:
            return Location(base.file, base.line, base.column + offset + exc.column - 1, path)
        return base

    def assignments(
        self, raw: Any, path: Path, owner: str, scope: Scope, variables: tuple[Variable, ...]
    ) -> tuple[tuple[str, Expression], ...]:
        if raw is None:
            return ()
        data = self.mapping(
            raw, path, f"{owner}: `assign`", "a mapping of variables to expressions"
        )
        by_name = self.var_map
        result = []
        for name, raw_value in data.items():
            apath = (*path, name)
            target = by_name.get(name)
            if target is None:
                if name in self.broken_variables:
                    raise _Skip()
                hint = self.hint(name, list(by_name))
                raise self.fail(
                    apath, f"{owner}: `assign` refers to unknown variable `{name}`{hint}", key=True
                )
            if target.context:
                raise self.fail(
                    apath,
                    f"{owner}: `assign` cannot change context variable `{name}`, "
                    "which is fixed when the instance starts",
                    key=True,
                )
            value = raw_value
            if target.type.kind == "set" and isinstance(value, list):
                value = "[" + ", ".join(_literal_text(v) for v in value) + "]"
            if (
                target.type.kind == "enum"
                and isinstance(value, str)
                and value in target.type.values
                and value not in scope.variables
            ):
                # A bare enum value (`environment: production`) reads as the literal.
                value = repr(value)
            label = f"`assign` to `{name}`"
            expr, kind = self.typed_expression(value, apath, owner, label, scope)
            if not assignable(target.type, kind):
                raise self.fail(
                    apath,
                    f"{owner}: cannot assign {kind.describe()} to `{name}` "
                    f"({target.type.describe()})",
                )
            result.append((name, expr))
        return tuple(result)

    # ------------------------------------------------------------------ invariants

    def invariants(
        self, raw: Any, var_types: Mapping[str, Type], transitions: tuple[Transition, ...]
    ) -> tuple[Invariant, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail(("invariants",), f"`invariants` must be a list, not {_kind(raw)}")
            return ()
        events = {t.event for t in transitions}
        scope = Scope(var_types, self.declared_states)
        result: list[Invariant] = []
        names: dict[str, Location] = {}
        for position, body in enumerate(raw):
            path: Path = ("invariants", position)
            owner = f"invariant {position + 1}"
            try:
                data = self.mapping(body, path, owner)
                self.keys(data, INVARIANT_KEYS, path, owner)
                if "name" not in data:
                    raise self.fail(path, f"{owner} needs a `name`")
                name = self.name(data["name"], (*path, "name"), owner, "invariant", PROPERTY_NAME)
                owner = f"invariant `{name}`"
                if name in names:
                    raise self.fail(
                        (*path, "name"),
                        f"{owner} is declared twice (first on line {names[name].line})",
                    )
                names[name] = self.loc((*path, "name"))
                kinds = [k for k in ("always", "never", "precedes") if k in data]
                if not kinds:
                    raise self.fail(path, f"{owner} needs one of `always`, `never` or `precedes`")
                if len(kinds) > 1:
                    raise self.fail(
                        (*path, kinds[1]),
                        f"{owner} has both `{kinds[0]}` and `{kinds[1]}`, "
                        "but an invariant states exactly one property",
                        key=True,
                    )
                kind = kinds[0]
                description = self.text(data.get("description", ""), (*path, "description"), owner)
                if kind == "precedes":
                    result.append(self.precedes(data["precedes"], path, name, events, description))
                else:
                    label = f"`{kind}` expression"
                    expr = self.expression(data[kind], (*path, kind), owner, label, scope, "bool")
                    result.append(
                        Invariant(name, cast(Any, kind), expr=expr, description=description)
                    )
            except _Skip:
                continue
        return tuple(result)

    def precedes(
        self, raw: Any, path: Path, name: str, events: set[str], description: str
    ) -> Invariant:
        owner = f"invariant `{name}`"
        ppath = (*path, "precedes")
        pdata = self.mapping(
            raw, ppath, f"{owner}: `precedes`", "a mapping with `first` and `then`"
        )
        self.keys(pdata, ("first", "then"), ppath, f"{owner}: `precedes`")
        pair = []
        for key in ("first", "then"):
            if key not in pdata:
                raise self.fail(ppath, f"{owner}: `precedes` needs `{key}`, an event name")
            event = pdata[key]
            if not isinstance(event, str):
                shown = f" {_show(event)}" if _is_scalar(event) else ""
                raise self.fail(
                    (*ppath, key),
                    f"{owner}: `{key}`{shown} must be text naming an event, not {_kind(event)}",
                )
            if event in self.failed_events:
                raise _Skip()
            if event not in events:
                hint = self.hint(event, sorted(events))
                raise self.fail(
                    (*ppath, key), f"{owner}: `{key}` names unknown event {_show(event)}{hint}"
                )
            pair.append(event)
        return Invariant(name, "precedes", first=pair[0], then=pair[1], description=description)

    # ------------------------------------------------------------------ permissions, waivers

    def exclusive(self, raw: Any, roles: tuple[Role, ...]) -> tuple[tuple[str, ...], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail(("exclusive_roles",), "`exclusive_roles` must be a list of role lists")
            return ()
        names = {r.name: None for r in roles}
        result = []
        for i, group in enumerate(raw):
            path: Path = ("exclusive_roles", i)
            if not isinstance(group, list) or len(group) < 2:
                self.fail(path, "each `exclusive_roles` entry must list two or more roles")
                continue
            if len(group) > MAX_ENTRIES:
                self.fail(
                    path, f"an `exclusive_roles` entry lists more than {MAX_ENTRIES:,} roles"
                )
                continue
            members: list[str] = []
            for j, role in enumerate(group):
                if not isinstance(role, str):
                    shown = f" {_show(role)}" if _is_scalar(role) else ""
                    self.fail(
                        (*path, j),
                        f"`exclusive_roles`: the role{shown} must be text, not {_kind(role)}",
                    )
                elif role not in names and role not in self.broken_roles:
                    self.fail(
                        (*path, j),
                        f"`exclusive_roles` names unknown role {_show(role)}"
                        f"{self.hint(role, list(names))}",
                    )
                else:
                    members.append(role)
            result.append(tuple(members))
        return tuple(result)

    def waivers(self, raw: Any) -> tuple[Waiver, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail(("waivers",), "`waivers` must be a list")
            return ()
        result = []
        for i, body in enumerate(raw):
            path: Path = ("waivers", i)
            owner = f"waiver {i + 1}"
            try:
                data = self.mapping(body, path, owner)
                self.keys(data, ("check", "target", "reason"), path, owner)
                check_id = self.name(
                    data.get("check"), (*path, "check"), owner, "check", PROPERTY_NAME
                )
                target = data.get("target")
                if not isinstance(target, str | int) or isinstance(target, bool):
                    raise self.fail(
                        (*path, "target"),
                        f"{owner}: `target` must name a state, transition or property",
                    )
                reason = data.get("reason")
                if reason is not None and not isinstance(reason, str):
                    raise self.fail(
                        (*path, "reason"), f"{owner}: `reason` must be text, not {_kind(reason)}"
                    )
                if reason is None or not reason.strip():
                    raise self.fail(path, f"{owner}: a waiver needs a written `reason`")
                result.append(Waiver(check_id, str(target), reason.strip()))
            except _Skip:
                continue
        return tuple(result)


# --------------------------------------------------------------------------- helpers


def _default(declared: Type) -> Value:
    kind = declared.kind
    if kind == "int":
        return 0
    if kind == "decimal":
        return Decimal(0)
    if kind == "bool":
        return False
    if kind == "enum":
        return declared.values[0]
    if kind == "str":
        return ""
    if kind == "set":
        return frozenset()
    return None


#: Stands for a number whose exponent is too long to construct: beyond every bound.
_FAR = Decimal("1e1000")


def _to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Only from Python data (`load_data`): read the float as the digits it prints as.
        value = repr(value)
    if isinstance(value, str):
        if far_exponent(value):
            return None
        try:
            dec = Decimal(value.strip())
        except InvalidOperation:
            return None
        return dec if dec.is_finite() else None
    if isinstance(value, Decimal):
        # A plain Decimal: a number read from a document is a subclass that keeps its text.
        return Decimal(value) if value.is_finite() else None
    return None


def _duration(value: Any) -> int | None:
    """Seconds of a duration (``1d12h``, or an integer of seconds); ``None`` if unreadable.

    A part of more than 12 digits counts as just above :data:`MAX_DURATION_SECONDS`, so a
    5,000-digit duration is refused as too long without converting it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value:
        return None
    match = DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()):
        return None
    if any(group is not None and len(group) > 12 for group in match.groups()):
        return MAX_DURATION_SECONDS + 1
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _literal_text(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "None"
    return str(value)


def _one_sentence(message: str) -> str:
    """Join the sentences of a message from Python's parser ("invalid syntax. Perhaps ...")."""
    return re.sub(r"\.\s+([A-Z])(?=[a-z])", lambda m: "; " + m.group(1).lower(), message)


def _fits_kind(raw: Any, kind: str) -> bool:
    """Whether a document value has the right shape for ``kind`` (its domain aside)."""
    if kind == "int":
        return isinstance(raw, int) and not isinstance(raw, bool)
    if kind == "decimal":
        return _to_decimal(raw) is not None
    if kind == "bool":
        return isinstance(raw, bool)
    if kind in ("enum", "str"):
        return isinstance(raw, str)
    if kind == "set":
        return isinstance(raw, list)
    return True


def _kind_text(declared: Type) -> str:
    return {
        "int": "an integer",
        "decimal": "a number",
        "bool": "`true` or `false`",
        "enum": "one of " + list_values(declared.values),
        "str": "text",
        "set": "a list",
        "principal": "empty",
    }[declared.kind]


def _yaml11(raw: Any, kind: str) -> str:
    """A hint for YAML 1.1 booleans, which a spec reads as text."""
    if (
        kind == "bool"
        and isinstance(raw, str)
        and raw.lower() in ("yes", "no", "on", "off", "y", "n")
    ):
        return f" (`{raw}` is text in YAML 1.2: write `true` or `false`)"
    return ""


def _is_scalar(value: Any) -> bool:
    """Whether ``value`` is a number or a boolean (shown in a message as it was written)."""
    return isinstance(value, bool | int | float | Decimal)


def _refuse_surrogates(tree: Node) -> None:
    """Refuse a text literal holding a lone surrogate (``'\\ud800'`` in a guard's source):
    it is no character, and no report or audit record could hold it as UTF-8."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, LiteralNode) and isinstance(node.value, str):
            found = _SURROGATE.search(node.value)
            if found is not None:
                raise ExpressionError(
                    f"the text literal holds a lone surrogate `\\u{ord(found.group(0)):04x}`, "
                    "which is not a character",
                    node.line,
                    node.col,
                )
        stack.extend(children(node))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _variable_names(tree: Node) -> set[str]:
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Var):
            names.add(node.name)
        stack.extend(children(node))
    return names


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return f"the text `{value[:40]}`"
    return f"a Python `{type(value).__name__}` object"


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) > 60:
        return f"`{value[:60]}…`"
    if isinstance(value, str | int | float | Decimal) and not isinstance(value, bool):
        return f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return _kind(value)
