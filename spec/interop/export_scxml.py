"""Export a railguard spec as a flat W3C SCXML statechart.

Each railguard state is a top-level ``<state>`` (a terminal one a ``<final>``); each transition
is a ``<transition>`` in every one of its source states, in declaration order (SCXML takes the
first whose ``cond`` holds, as railguard does). Variables are ``<data>`` of the ``python`` datamodel (``int``, ``decimal``, ``bool`` and ``str``
with their initial value; principals and sets declared without one); guards are ``cond`` and
assignments ``<assign>`` in the same expression syntax, with ``params.x`` written
``_event.data.x`` and ``state == "s"`` written ``In('s')``. A state timeout is a delayed
``<send>`` cancelled on exit.

What SCXML cannot say — permissions and roles, typed params, effects and compensations,
error exits, invariants — travels in one ``<rg:spec>`` element of railguard's own namespace
(SCXML processors ignore foreign elements): the spec's canonical JSON. The importer restores
the spec from it exactly when the rest of the document is still what this exporter writes for
that spec; a document edited since is imported from its structure (flattened) instead.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from railguard.spec.dump import dump_data
from railguard.spec.model import Spec

from . import InteropError

__all__ = ["RG_NS", "SCXML_NS", "export_scxml"]

SCXML_NS = "http://www.w3.org/2005/07/scxml"
RG_NS = "urn:railguard:scxml:1"
_PARAM = re.compile(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)")
_STATE_IS = re.compile(r"""\bstate == "([A-Za-z_][A-Za-z0-9_]*)"|"([A-Za-z_][A-Za-z0-9_]*)" == state\b""")


def _cond(text: str) -> str:
    return _STATE_IS.sub(lambda m: f"In('{m.group(1) or m.group(2)}')", _PARAM.sub(r"_event.data.\1", text))


def _literal(value: Any) -> str | None:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return None


def export_scxml(spec: Spec) -> str:
    """The spec as SCXML text (see the module docstring)."""
    root = Element("scxml", {"xmlns": SCXML_NS, "xmlns:rg": RG_NS, "version": "1.0", "datamodel": "python",
                             "initial": spec.initial_state.name, "name": spec.name})
    meta = SubElement(root, "rg:spec")
    meta.text = json.dumps(dump_data(spec), ensure_ascii=False, separators=(",", ":"))
    if spec.variables:
        model = SubElement(root, "datamodel")
        for variable in spec.variables:
            literal = _literal(variable.initial) if variable.type.kind in ("int", "decimal", "bool", "str") else None
            # Principals, sets and unset values have no SCXML literal: declared, value unknown.
            SubElement(model, "data", {"id": variable.name, **({"expr": literal} if literal is not None else {})})
    for state in spec.states:
        element = SubElement(root, "final" if state.terminal is not None else "state", {"id": state.name})
        if state.timeout is not None:
            entry = SubElement(element, "onentry")
            SubElement(entry, "send", {"event": state.timeout.event or "error.timeout", "delay": f"{state.timeout.seconds}s", "id": f"timeout.{state.name}"})
            leave = SubElement(element, "onexit")
            SubElement(leave, "cancel", {"sendid": f"timeout.{state.name}"})
        for t in spec.transitions_from(state.name):
            attrs = {"event": t.event, "target": t.target}
            if t.guard is not None:
                attrs["cond"] = _cond(t.guard.text)
            move = SubElement(element, "transition", attrs)
            for name, expr in t.assign:
                SubElement(move, "assign", {"location": name, "expr": _cond(expr.text)})
    indent(root)
    text = tostring(root, encoding="unicode")
    if len(text) > 4 * 1024 * 1024:
        raise InteropError(f"spec `{spec.name}` is too large to export as SCXML")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n"
