"""Hostile documents are refused with one sentence, in bounded memory, before any expansion:
entity bombs, external entities, DTDs, deep nesting, huge and duplicate-key documents."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from railguard.spec.interop import InteropError
from railguard.spec.interop.asl import import_asl
from railguard.spec.interop.common import MAX_BYTES, MAX_DEPTH
from railguard.spec.interop.scxml import import_scxml, import_scxml_text

SCXML = '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0">{}</scxml>'

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="a"><onentry><log expr="&lol9;"/></onentry></state></scxml>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE scxml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="a"><onentry><log expr="&secret;"/></onentry></state></scxml>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE scxml [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="a"/></scxml>"""

PLAIN_DTD = """<?xml version="1.0"?>
<!DOCTYPE scxml SYSTEM "scxml.dtd">
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0"><state id="a"/></scxml>"""


def deep_xml(depth: int) -> str:
    return SCXML.format('<state id="s">' * depth + "</state>" * depth)


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(InteropError) as refused:
            action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return peak


@pytest.mark.parametrize(("text", "words"), [
    (BILLION_LAUGHS, "DTD"),
    (EXTERNAL_ENTITY, "DTD"),
    (PARAMETER_ENTITY, "DTD"),
    (PLAIN_DTD, "DTD"),
    (deep_xml(10_000), f"more than {MAX_DEPTH} levels deep"),
    ("<scxml>" + "<state/>" * 200_000 + "</scxml>", "elements"),
    (SCXML.format("<state id='a'>" + "x" * (MAX_BYTES + 1) + "</state>"), "characters"),
    ("<scxml><state id='a'>", "not well-formed"),
    ("<html/>", "not an SCXML document"),
])
def test_hostile_xml_is_refused_in_one_sentence_and_bounded_memory(text: str, words: str) -> None:
    peak = peak_memory(lambda: import_scxml_text(text, "hostile.scxml"))
    assert peak < 64 * 1024 * 1024
    with pytest.raises(InteropError, match=words):
        import_scxml_text(text, "hostile.scxml")


def deep_json(depth: int) -> str:
    return '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Result": ' + "[" * depth + "]" * depth + "}}}"


@pytest.mark.parametrize(("text", "words"), [
    (deep_json(10_000), f"more than {MAX_DEPTH} levels deep"),
    ('{"StartAt": "A", "StartAt": "B", "States": {}}', "appears twice"),
    ("a: &a [1, 2]\nb: [*a, *a, *a]\n", "anchors or aliases"),
    ("x: " + "[" * 10_000 + "]" * 10_000, "levels deep"),
    ('{"StartAt": "A", "States": {' + ",".join(f'"S{i}": {{"Type": "Pass", "Next": "S{i + 1}"}}' for i in range(60_000)) + "}}", "values"),
    ('{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "' + "x" * (MAX_BYTES + 1) + '", "End": true}}}', "bytes"),
    ("{not json", "not valid JSON"),
])
def test_hostile_json_and_yaml_are_refused_in_one_sentence_and_bounded_memory(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "hostile.asl.json"
    path.write_text(text, encoding="utf-8")
    peak = peak_memory(lambda: import_asl(str(path)))
    assert peak < 256 * 1024 * 1024
    with pytest.raises(InteropError, match=words):
        import_asl(str(path))


def test_a_huge_scxml_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.scxml"
    with path.open("w", encoding="utf-8") as out:
        out.write(SCXML.format("<!--" + "x" * (MAX_BYTES + 10) + "-->"))
    with pytest.raises(InteropError, match="bytes, more than"):
        import_scxml(str(path))


def test_a_parallel_product_beyond_the_bound_is_refused() -> None:
    from railguard.spec.interop.asl import import_asl_data

    branches = [{"StartAt": f"B{i}a", "States": {f"B{i}a": {"Type": "Pass", "Next": f"B{i}b"}, f"B{i}b": {"Type": "Pass", "End": True}}} for i in range(9)]
    document = {"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": branches, "End": True}}}
    with pytest.raises(InteropError, match="more than 500 combinations"):
        import_asl_data(json.loads(json.dumps(document)), "wide.asl.json", max_states=500)
