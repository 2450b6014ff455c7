"""Validation of Amazon States Language documents before import: every defect, named.

:func:`validate_asl` returns one :class:`AslProblem` per defect (a JSON-pointer path and one
sentence). It checks what a deployment would refuse: the fields each state type allows and
requires, ``Next``/``End``, targets inside their own scope, unique state names (at most 80
characters), reachability, a terminal in every scope, JSONPath reference paths, payload
templates (``.$`` fields, duplicates, intrinsic functions), JSONata ``{% ... %}`` syntax and the
fields each query language allows, mutually exclusive fields, value ranges, Lambda ARNs and
``${...}`` template placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AslProblem", "validate_asl"]

MAX_NAME = 80


@dataclass(frozen=True, slots=True)
class AslProblem:
    """One defect: where (JSON pointer path) and what, in one sentence."""

    path: tuple[str | int, ...]
    message: str

    @property
    def pointer(self) -> str:
        return "/" + "/".join(str(p) for p in self.path)


JSONPATH_IO = ("InputPath", "OutputPath", "Parameters", "ResultPath", "ResultSelector")
JSONATA_IO = ("Arguments", "Output")
COMMON = ("Type", "Comment", "QueryLanguage", "Assign")
TRANSITION = ("Next", "End")
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "Task": (*COMMON, *TRANSITION, *JSONPATH_IO, *JSONATA_IO, "Resource", "Retry", "Catch", "TimeoutSeconds",
             "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath", "Credentials"),
    "Pass": (*COMMON, *TRANSITION, "InputPath", "OutputPath", "Parameters", "ResultPath", "Result", "Output"),
    "Choice": (*COMMON, "Choices", "Default", "InputPath", "OutputPath", "Output"),
    "Wait": (*COMMON, *TRANSITION, "Seconds", "SecondsPath", "Timestamp", "TimestampPath", "InputPath", "OutputPath", "Output"),
    "Succeed": ("Type", "Comment", "QueryLanguage", "InputPath", "OutputPath", "Output"),
    "Fail": ("Type", "Comment", "QueryLanguage", "Error", "ErrorPath", "Cause", "CausePath"),
    "Parallel": (*COMMON, *TRANSITION, *JSONPATH_IO, *JSONATA_IO, "Branches", "Retry", "Catch"),
    "Map": (*COMMON, *TRANSITION, *JSONPATH_IO, *JSONATA_IO, "Iterator", "ItemProcessor", "ItemsPath", "Items",
            "ItemSelector", "ItemReader", "ItemBatcher", "ResultWriter", "MaxConcurrency", "MaxConcurrencyPath",
            "ToleratedFailurePercentage", "ToleratedFailurePercentagePath", "ToleratedFailureCount",
            "ToleratedFailureCountPath", "Label", "Retry", "Catch"),
}
JSONPATH_ONLY = ("InputPath", "OutputPath", "Parameters", "ResultPath", "ResultSelector", "ItemsPath",
                 "TimeoutSecondsPath", "HeartbeatSecondsPath", "SecondsPath", "TimestampPath", "ErrorPath",
                 "CausePath", "MaxConcurrencyPath", "ToleratedFailurePercentagePath", "ToleratedFailureCountPath",
                 "Variable")
JSONATA_ONLY = ("Arguments", "Output", "Condition", "Items")
EXCLUSIVE = (
    ("TimeoutSeconds", "TimeoutSecondsPath"), ("HeartbeatSeconds", "HeartbeatSecondsPath"),
    ("Cause", "CausePath"), ("Error", "ErrorPath"), ("Items", "ItemsPath"), ("Iterator", "ItemProcessor"),
    ("MaxConcurrency", "MaxConcurrencyPath"), ("ToleratedFailureCount", "ToleratedFailureCountPath"),
    ("ToleratedFailurePercentage", "ToleratedFailurePercentagePath"),
)
TOP_LEVEL = ("StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage")
SCOPE_KEYS = ("StartAt", "States", "Comment", "ProcessorConfig", "QueryLanguage")
COMPARISONS = {
    f"{kind}{op}{suffix}"
    for kind in ("String", "Numeric", "Timestamp")
    for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    for suffix in ("", "Path")
} | {"BooleanEquals", "BooleanEqualsPath", "StringMatches", "IsNull", "IsPresent", "IsNumeric", "IsString",
     "IsBoolean", "IsTimestamp"}
RULE_KEYS = {"Variable", "Next", "And", "Or", "Not", "Comment", "Condition", "Assign", "Output", *COMPARISONS}
INTRINSICS = {
    "Format", "StringToJson", "JsonToString", "Array", "ArrayPartition", "ArrayContains", "ArrayRange",
    "ArrayGetItem", "ArrayLength", "ArrayUnique", "Base64Encode", "Base64Decode", "Hash", "JsonMerge",
    "MathRandom", "MathAdd", "StringSplit", "UUID",
}
NUMERIC_ARGS = {"MathAdd", "MathRandom", "ArrayRange", "ArrayPartition"}

_NAME_SEG = r"(?:\.(?:[^\s.\[\]()'\"$@*?]+|\*)|\.\.[^\s.\[\]()'\"]+|\[(?:-?\d+|\*|'[^']*'|\"[^\"]*\"|-?\d*:-?\d*|\d+(?:,\s*\d+)+|\?\(.*?\)|\(.*?\))\])"
_PATH = re.compile(rf"\A(?:\$\$|\$[A-Za-z_][A-Za-z0-9_]*|\$)(?:{_NAME_SEG})*\Z")
_REFERENCE = re.compile(r"\A\$(?:\.[^\s.\[\]()'\"$@*?,:]+|\['[^']*'\]|\[\d+\])*\Z")
_LAMBDA = re.compile(r"\Aarn:aws[a-z-]*:lambda:[a-z0-9-]*:\d*:function:[A-Za-z0-9_-]+(?::(?:\$LATEST|[A-Za-z0-9_-]+))?\Z")
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z0-9_.:-]+\}")


def validate_asl(data: Any) -> list[AslProblem]:
    """Every defect of an ASL document, in document order (empty when it is valid)."""
    return list(_Validator().document(data))


class _Validator:
    def __init__(self) -> None:
        self.names: dict[str, tuple[str | int, ...]] = {}

    def document(self, data: Any) -> Iterator[AslProblem]:
        if not isinstance(data, dict):
            yield AslProblem((), "a state machine definition must be a JSON object")
            return
        for key in data:
            if key not in TOP_LEVEL:
                yield AslProblem((key,), f"`{key}` is not a field of a state machine")
        language = data.get("QueryLanguage", "JSONPath")
        if language not in ("JSONPath", "JSONata"):
            yield AslProblem(("QueryLanguage",), f"`QueryLanguage` must be `JSONPath` or `JSONata`, not {language!r}")
            language = "JSONPath"
        yield from self.scope(data, (), language)

    def scope(self, data: Any, path: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        if not isinstance(data, dict):
            yield AslProblem(path, "a branch or item processor must be an object with `StartAt` and `States`")
            return
        if path:
            for key in data:
                if key not in SCOPE_KEYS:
                    yield AslProblem((*path, key), f"`{key}` is not a field of a branch or item processor")
        states = data.get("States")
        start = data.get("StartAt")
        if not isinstance(states, dict) or not states:
            yield AslProblem((*path, "States"), "`States` must be a non-empty object")
            return
        if not isinstance(start, str):
            yield AslProblem((*path, "StartAt"), "`StartAt` must name a state")
        elif start not in states:
            yield AslProblem((*path, "StartAt"), f"`StartAt` names `{start}`, which is not a state of this scope")
        for name, body in states.items():
            where = (*path, "States", name)
            if len(name) > MAX_NAME:
                yield AslProblem(where, f"state name `{name[:40]}...` is longer than {MAX_NAME} characters")
            if name in self.names:
                yield AslProblem(where, f"state name `{name}` is used twice (names are unique in the whole machine)")
            self.names[name] = where
            yield from self.state(name, body, where, set(states), language)
        if isinstance(start, str) and start in states:
            yield from self.reachability(states, start, path)

    def reachability(self, states: Mapping[str, Any], start: str, path: tuple[str | int, ...]) -> Iterator[AslProblem]:
        seen = {start}
        todo = [start]
        terminal = False
        while todo:
            body = states[todo.pop()]
            if not isinstance(body, dict):
                continue
            if body.get("End") is True or body.get("Type") in ("Succeed", "Fail"):
                terminal = True
            for target in _targets(body):
                if target in states and target not in seen:
                    seen.add(target)
                    todo.append(target)
        for name in states:
            if name not in seen:
                yield AslProblem((*path, "States", name), f"state `{name}` cannot be reached from `StartAt`")
        if not terminal:
            yield AslProblem((*path, "States"), "no terminal state (`End`, `Succeed` or `Fail`) can be reached" + (" in this branch" if path else ""))

    def state(self, name: str, body: Any, where: tuple[str | int, ...], scope: set[str], language: str) -> Iterator[AslProblem]:
        if not isinstance(body, dict):
            yield AslProblem(where, f"state `{name}` must be an object")
            return
        kind = body.get("Type")
        if not isinstance(kind, str) or kind not in ALLOWED:
            yield AslProblem((*where, "Type"), f"state `{name}` has unknown `Type` {kind!r}")
            return
        language = body.get("QueryLanguage", language)
        for key in body:
            if key not in ALLOWED[kind]:
                yield AslProblem((*where, key), f"`{key}` is not a field of a {kind} state (`{name}`)")
        for key in body:
            if language == "JSONata" and key in JSONPATH_ONLY:
                yield AslProblem((*where, key), f"state `{name}` uses JSONata, so `{key}` (a JSONPath field) is not allowed")
            if language == "JSONPath" and key in JSONATA_ONLY:
                yield AslProblem((*where, key), f"state `{name}` uses JSONPath, so `{key}` (a JSONata field) is not allowed")
        for a, b in EXCLUSIVE:
            if a in body and b in body:
                yield AslProblem((*where, b), f"state `{name}` has both `{a}` and `{b}`; give one")
        if kind in ("Task", "Pass", "Wait", "Parallel", "Map"):
            has_next, has_end = "Next" in body, body.get("End") is True
            if has_next and has_end:
                yield AslProblem((*where, "End"), f"state `{name}` has both `Next` and `End`")
            elif not has_next and not has_end:
                yield AslProblem(where, f"state `{name}` needs `Next` or `End: true`")
            if "End" in body and not isinstance(body["End"], bool):
                yield AslProblem((*where, "End"), f"state `{name}`: `End` must be true or false")
        for target, tpath in _target_fields(body, where):
            if not isinstance(target, str):
                yield AslProblem(tpath, f"state `{name}`: a transition target must be a state name")
            elif target not in scope:
                yield AslProblem(tpath, f"state `{name}` goes to `{target}`, which is not a state of its own scope")
        for key in ("InputPath", "OutputPath", "ItemsPath", "SecondsPath", "TimestampPath", "TimeoutSecondsPath",
                    "HeartbeatSecondsPath", "MaxConcurrencyPath", "ToleratedFailureCountPath",
                    "ToleratedFailurePercentagePath", "CausePath", "ErrorPath"):
            if key in body and body[key] is not None:
                yield from self.path_value(body[key], (*where, key), key, allow_intrinsic=key in ("CausePath", "ErrorPath"))
        if "ResultPath" in body and body["ResultPath"] is not None:
            value = body["ResultPath"]
            if not isinstance(value, str) or not _REFERENCE.fullmatch(value):
                yield AslProblem((*where, "ResultPath"), f"state `{name}`: `ResultPath` {value!r} is not a reference path such as `$.result`")
        for key in ("Parameters", "ResultSelector", "ItemSelector", "Arguments", "Output", "Result", "Assign"):
            if key in body:
                yield from self.template(body[key], (*where, key), language, payload=key not in ("Result",))
        yield from self.strings(body, where, language)
        for key in ("TimeoutSeconds", "HeartbeatSeconds", "Seconds", "MaxConcurrency", "ToleratedFailureCount"):
            if key in body and not _is_jsonata(body[key]):
                value = body[key]
                low = 1 if key in ("TimeoutSeconds", "HeartbeatSeconds") else 0
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    yield AslProblem((*where, key), f"state `{name}`: `{key}` must be an integer of at least {low}, not {value!r}")
        if "ToleratedFailurePercentage" in body and not _is_jsonata(body["ToleratedFailurePercentage"]):
            value = body["ToleratedFailurePercentage"]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
                yield AslProblem((*where, "ToleratedFailurePercentage"), f"state `{name}`: `ToleratedFailurePercentage` must be between 0 and 100, not {value!r}")
        yield from getattr(self, f"kind_{kind.lower()}")(name, body, where, language)
        for key in ("Retry", "Catch"):
            if key in body:
                yield from self.handlers(name, body[key], (*where, key), key)

    def kind_task(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        resource = body.get("Resource")
        if resource is None:
            yield AslProblem(where, f"Task `{name}` needs a `Resource`")
        elif isinstance(resource, str):
            unclosed = _PLACEHOLDER.sub("", resource)
            if "${" in unclosed:
                yield AslProblem((*where, "Resource"), f"Task `{name}`: `Resource` {resource!r} has an unclosed `${{...}}` placeholder")
            elif ":lambda:" in resource and ":function:" in resource and "${" not in resource and not _LAMBDA.fullmatch(resource):
                yield AslProblem((*where, "Resource"), f"Task `{name}`: `Resource` {resource!r} is not a valid Lambda function ARN (name, then an optional alias or version)")
        elif not isinstance(resource, dict):
            yield AslProblem((*where, "Resource"), f"Task `{name}`: `Resource` must be a string")
        if "Credentials" in body:
            credentials = body["Credentials"]
            if not isinstance(credentials, dict):
                yield AslProblem((*where, "Credentials"), f"Task `{name}`: `Credentials` must be an object (a payload template), not {credentials!r}")
            else:
                yield from self.template(credentials, (*where, "Credentials"), language, payload=True)
        timeout, heartbeat = body.get("TimeoutSeconds"), body.get("HeartbeatSeconds")
        if isinstance(timeout, int) and isinstance(heartbeat, int) and not isinstance(timeout, bool) and heartbeat >= timeout:
            yield AslProblem((*where, "HeartbeatSeconds"), f"Task `{name}`: `HeartbeatSeconds` must be less than `TimeoutSeconds`")

    def kind_pass(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        return iter(())

    def kind_succeed(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        return iter(())

    def kind_fail(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        return iter(())

    def kind_wait(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        given = [k for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if k in body]
        if len(given) != 1:
            yield AslProblem(where, f"Wait `{name}` needs exactly one of `Seconds`, `SecondsPath`, `Timestamp`, `TimestampPath`, not {len(given)}")

    def kind_choice(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        choices = body.get("Choices")
        if not isinstance(choices, list) or not choices:
            yield AslProblem((*where, "Choices"), f"Choice `{name}` needs a non-empty list of `Choices`")
            return
        for index, rule in enumerate(choices):
            rpath = (*where, "Choices", index)
            if isinstance(rule, dict) and "Next" not in rule:
                yield AslProblem(rpath, f"Choice `{name}`: rule {index + 1} needs `Next` (a Choice cannot end the machine)")
            yield from self.rule(name, rule, rpath, language, top=True)

    def rule(self, name: str, rule: Any, path: tuple[str | int, ...], language: str, *, top: bool) -> Iterator[AslProblem]:
        if not isinstance(rule, dict):
            yield AslProblem(path, f"Choice `{name}`: a rule must be an object")
            return
        for key in rule:
            if key not in RULE_KEYS or (key == "Next" and not top):
                yield AslProblem((*path, key), f"Choice `{name}`: `{key}` is not a field of a choice rule")
        if "Condition" in rule:
            if language != "JSONata":
                yield AslProblem((*path, "Condition"), f"Choice `{name}`: `Condition` needs JSONata")
            return
        combinators = [k for k in ("And", "Or", "Not") if k in rule]
        operators = [k for k in rule if k in COMPARISONS]
        if combinators:
            for key in combinators:
                subs = rule[key] if key != "Not" else [rule[key]]
                if not isinstance(subs, list) or not subs:
                    yield AslProblem((*path, key), f"Choice `{name}`: `{key}` needs a list of rules")
                    continue
                for i, sub in enumerate(subs):
                    yield from self.rule(name, sub, (*path, key) if key == "Not" else (*path, key, i), language, top=False)
            return
        if len(operators) != 1:
            yield AslProblem(path, f"Choice `{name}`: a rule needs exactly one comparison operator, not {len(operators)}")
        variable = rule.get("Variable")
        if not isinstance(variable, str) or not _PATH.fullmatch(variable):
            yield AslProblem((*path, "Variable"), f"Choice `{name}`: `Variable` {variable!r} is not a valid path such as `$.value`")
        for op in operators:
            value = rule[op]
            if op.endswith("Path") and (not isinstance(value, str) or not _PATH.fullmatch(value)):
                yield AslProblem((*path, op), f"Choice `{name}`: `{op}` {value!r} is not a valid path")
            elif op.startswith("Numeric") and not op.endswith("Path") and (isinstance(value, bool) or not isinstance(value, int | float)):
                yield AslProblem((*path, op), f"Choice `{name}`: `{op}` needs a number, not {value!r}")
            elif (op.startswith(("String", "Timestamp"))) and not op.endswith("Path") and not isinstance(value, str):
                yield AslProblem((*path, op), f"Choice `{name}`: `{op}` needs a string, not {value!r}")
            elif (op == "BooleanEquals" or op.startswith("Is")) and not isinstance(value, bool):
                yield AslProblem((*path, op), f"Choice `{name}`: `{op}` needs true or false, not {value!r}")

    def kind_parallel(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        branches = body.get("Branches")
        if not isinstance(branches, list) or not branches:
            yield AslProblem((*where, "Branches"), f"Parallel `{name}` needs a non-empty list of `Branches`")
            return
        for index, branch in enumerate(branches):
            yield from self.scope(branch, (*where, "Branches", index), _language(branch, language))

    def kind_map(self, name: str, body: dict[str, Any], where: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        key = "ItemProcessor" if "ItemProcessor" in body else "Iterator"
        if key not in body:
            yield AslProblem(where, f"Map `{name}` needs an `ItemProcessor` (or `Iterator`)")
        else:
            yield from self.scope(body[key], (*where, key), _language(body[key], language))
        reader = body.get("ItemReader")
        if isinstance(reader, dict) and isinstance(reader.get("ReaderConfig"), dict):
            config = reader["ReaderConfig"]
            if "MaxItems" in config and "MaxItemsPath" in config:
                yield AslProblem((*where, "ItemReader", "ReaderConfig"), f"Map `{name}`: `ReaderConfig` has both `MaxItems` and `MaxItemsPath`; give one")
        batcher = body.get("ItemBatcher")
        if isinstance(batcher, dict):
            for field in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
                if field in batcher and f"{field}Path" in batcher:
                    yield AslProblem((*where, "ItemBatcher"), f"Map `{name}`: `ItemBatcher` has both `{field}` and `{field}Path`; give one")

    def handlers(self, name: str, value: Any, path: tuple[str | int, ...], key: str) -> Iterator[AslProblem]:
        if not isinstance(value, list):
            yield AslProblem(path, f"state `{name}`: `{key}` must be a list")
            return
        allowed = {"ErrorEquals", "Next", "ResultPath", "Comment", "Assign", "Output"} if key == "Catch" else {
            "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"}
        for index, entry in enumerate(value):
            epath = (*path, index)
            if not isinstance(entry, dict):
                yield AslProblem(epath, f"state `{name}`: each `{key}` entry must be an object")
                continue
            for field in entry:
                if field not in allowed:
                    yield AslProblem((*epath, field), f"state `{name}`: `{field}` is not a field of a `{key}` entry")
            errors = entry.get("ErrorEquals")
            if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
                yield AslProblem((*epath, "ErrorEquals"), f"state `{name}`: `{key}` entry {index + 1} needs `ErrorEquals`, a non-empty list of error names")
            if key == "Catch" and "Next" not in entry:
                yield AslProblem(epath, f"state `{name}`: `Catch` entry {index + 1} needs `Next`")
            if key == "Retry":
                attempts = entry.get("MaxAttempts", 3)
                if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
                    yield AslProblem((*epath, "MaxAttempts"), f"state `{name}`: `MaxAttempts` must be a non-negative integer")
                rate = entry.get("BackoffRate", 2.0)
                if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 1:
                    yield AslProblem((*epath, "BackoffRate"), f"state `{name}`: `BackoffRate` must be at least 1")

    def path_value(self, value: Any, path: tuple[str | int, ...], label: str, *, allow_intrinsic: bool = False) -> Iterator[AslProblem]:
        if allow_intrinsic and isinstance(value, str) and value.startswith("States."):
            yield from self.intrinsic(value, path)
            return
        if not isinstance(value, str) or not _PATH.fullmatch(value):
            yield AslProblem(path, f"`{label}` {value!r} is not a valid path such as `$.value`")

    def template(self, value: Any, path: tuple[str | int, ...], language: str, *, payload: bool) -> Iterator[AslProblem]:
        if isinstance(value, dict):
            seen: dict[str, str] = {}
            for key, item in value.items():
                bare = key[:-2] if key.endswith(".$") else key
                if bare in seen and payload:
                    yield AslProblem((*path, key), f"field `{bare}` appears twice in a payload template (as `{seen[bare]}` and `{key}`)")
                seen[bare] = key
                if key.endswith(".$") and payload and language == "JSONPath":
                    if not isinstance(item, str):
                        yield AslProblem((*path, key), f"field `{key}` must be a path or an intrinsic function")
                    elif item.startswith("States."):
                        yield from self.intrinsic(item, (*path, key))
                    elif not _PATH.fullmatch(item):
                        yield AslProblem((*path, key), f"field `{key}` has {item!r}, which is not a valid path or intrinsic function")
                else:
                    yield from self.template(item, (*path, key), language, payload=payload)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from self.template(item, (*path, index), language, payload=payload)

    def intrinsic(self, text: str, path: tuple[str | int, ...]) -> Iterator[AslProblem]:
        try:
            _Intrinsic(text).parse()
        except ValueError as exc:
            yield AslProblem(path, f"intrinsic function {text!r} is malformed: {exc}")

    def strings(self, body: Any, path: tuple[str | int, ...], language: str) -> Iterator[AslProblem]:
        """JSONata ``{% ... %}`` strings anywhere in a JSONata state (comments excepted)."""
        if language != "JSONata":
            return
        stack: list[tuple[Any, tuple[str | int, ...]]] = [(body, path)]
        while stack:
            item, where = stack.pop()
            if isinstance(item, dict):
                stack.extend((v, (*where, k)) for k, v in item.items() if k != "Comment" and k not in ("Iterator", "ItemProcessor", "Branches"))
            elif isinstance(item, list):
                stack.extend((v, (*where, i)) for i, v in enumerate(item))
            elif isinstance(item, str) and (item.startswith("{%") or item.endswith("%}")):
                problem = jsonata_problem(item)
                if problem is not None:
                    yield AslProblem(where, f"JSONata {item[:40]!r}: {problem}")


def _language(scope: Any, inherited: str) -> str:
    if isinstance(scope, dict) and scope.get("QueryLanguage") in ("JSONPath", "JSONata"):
        return str(scope["QueryLanguage"])
    return inherited


def _is_jsonata(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{%")


def _targets(body: Mapping[str, Any]) -> list[str]:
    return [t for t, _ in _target_fields(body, ()) if isinstance(t, str)]


def _target_fields(body: Mapping[str, Any], where: tuple[str | int, ...]) -> list[tuple[Any, tuple[str | int, ...]]]:
    found: list[tuple[Any, tuple[str | int, ...]]] = []
    if "Next" in body:
        found.append((body["Next"], (*where, "Next")))
    if "Default" in body:
        found.append((body["Default"], (*where, "Default")))
    for key in ("Choices", "Catch"):
        entries = body.get(key)
        if isinstance(entries, list):
            found.extend((e["Next"], (*where, key, i, "Next")) for i, e in enumerate(entries) if isinstance(e, dict) and "Next" in e)
    return found


# --------------------------------------------------------------------------- intrinsic functions


class _Intrinsic:
    """A recursive-descent check of ``States.Name(arg, ...)`` with path, number, string, null
    and nested-function arguments."""

    _TOKEN = re.compile(r"\s*(?:(?P<fn>States\.[A-Za-z0-9]+)\(|(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<path>\$\$?[^,()\s]*(?:\([^)]*\)[^,()\s]*)*)|(?P<lit>null|true|false)|(?P<punct>[,)]))")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def next(self) -> tuple[str, str]:
        match = self._TOKEN.match(self.text, self.pos)
        if match is None:
            raise ValueError(f"unexpected text at character {self.pos + 1}")
        self.pos = match.end()
        kind = match.lastgroup or ""
        return kind, match.group(kind)

    def parse(self) -> None:
        kind, value = self.next()
        if kind != "fn":
            raise ValueError("it must start with `States.<Name>(`")
        self.call(value)
        if self.text[self.pos:].strip():
            raise ValueError("text follows the closing parenthesis")

    def call(self, name: str) -> None:
        short = name.split(".", 1)[1]
        if short not in INTRINSICS:
            raise ValueError(f"`{name}` is not an intrinsic function")
        first = True
        while True:
            kind, value = self.next()
            if kind == "punct" and value == ")" and first:
                return
            if kind == "fn":
                self.call(value)
            elif kind == "path" and not _PATH.fullmatch(value):
                raise ValueError(f"{value!r} is not a valid path")
            elif kind == "str" and short in NUMERIC_ARGS:
                raise ValueError(f"`{name}` takes numbers or paths, not the string {value}")
            elif kind == "punct":
                raise ValueError(f"an argument is missing before `{value}`")
            first = False
            kind, value = self.next()
            if kind != "punct":
                raise ValueError("arguments must be separated by commas")
            if value == ")":
                return


# --------------------------------------------------------------------------- JSONata


_JSONATA_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*|`[^`]*`|\$\$|\$)
  | (?P<op>:=|!=|<=|>=|~>|\.\.|\?:|\?\?|[-+*/%&=<>?:.,;@#^|!])
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
""", re.VERBOSE)
_WORD_OPS = {"and", "or", "in"}
_PAIRS = {")": "(", "]": "[", "}": "{"}


def jsonata_problem(text: str) -> str | None:
    """Why ``text`` is not a well-formed ``{% expression %}``, or ``None`` when it is.

    The surround must be exactly ``{% `` and `` %}``; inside, brackets must balance, every
    binary operator needs an operand on each side, and numbers must be complete. This is a
    syntax check, not an evaluator: JSONata is never run.
    """
    if not (text.startswith("{% ") and text.endswith(" %}")) or len(text) < 7:
        return "a JSONata expression must be written `{% expression %}` (one space inside each delimiter)"
    inner = text[3:-3]
    if not inner or inner[0].isspace():
        return "a JSONata expression must start right after `{% `"
    stack: list[str] = []
    expect_operand = True
    last = "open"
    last_value = previous = "open"
    position = 0
    while position < len(inner):
        if inner[position] == "/" and expect_operand:
            end = inner.find("/", position + 1)
            if end < 0:
                return "a regular expression is not closed"
            position = end + 1
            while position < len(inner) and inner[position].isalpha():
                position += 1
            expect_operand, last = False, "operand"
            continue
        match = _JSONATA_TOKEN.match(inner, position)
        if match is None:
            return f"unexpected character {inner[position]!r}"
        position = match.end()
        kind = match.lastgroup
        value = match.group()
        if kind == "ws":
            continue
        last_value, previous = previous, value
        if kind == "name" and value in _WORD_OPS and not expect_operand:
            kind = "op"
        if kind in ("str", "num", "name"):
            if not expect_operand and kind == "num":
                return f"a number follows a value without an operator near {value!r}"
            expect_operand, last = False, "operand"
        elif kind == "open":
            stack.append(value)
            expect_operand, last = True, "open"
        elif kind == "close":
            if not stack or stack.pop() != _PAIRS[value]:
                return f"`{value}` closes nothing"
            if last == "op":
                return f"an operand is missing before `{value}`"
            expect_operand, last = False, "operand"
        elif kind == "op":
            if value == "-" and expect_operand:
                continue
            if value == "*" and expect_operand and last_value == ".":
                expect_operand, last = False, "operand"
                continue
            if expect_operand:
                return f"operator `{value}` has no left operand"
            expect_operand, last = True, "op"
    if stack:
        return f"`{stack[-1]}` is not closed"
    if expect_operand:
        return "the expression ends with an operator"
    return None
