"""The size bounds of a spec, in one place.

Every size an author (or an attacker) controls is bounded, so that loading and everything
after it finish in bounded time and memory; beyond a bound the loader refuses the spec with
one located sentence. The README ("Limits") lists these numbers.
"""

from __future__ import annotations

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_DURATION_SECONDS",
    "MAX_ENTRIES",
    "MAX_EXPRESSION_LENGTH",
    "MAX_HINT_WORK",
    "MAX_NAME_LENGTH",
    "MAX_NODES",
    "MAX_PLACES",
    "MAX_PROBLEMS",
    "MAX_TEXT_LENGTH",
]

#: Bytes of a spec file (characters of spec text), and characters of text a document may
#: expand to through aliases: a 5,000-state workflow takes about 0.7 MB; reading 8 MB takes
#: some seconds and under a gigabyte.
MAX_BYTES = 8_000_000
#: Nesting of lists and mappings in a document or in plain data.
MAX_DEPTH = 64
#: Values a document or plain data may hold (generated specs of a million transitions built
#: as plain data load; text is bounded by :data:`MAX_BYTES` first).
MAX_NODES = 50_000_000
#: Values a document that uses aliases may expand to (the "billion laughs").
MAX_ALIAS_NODES = 100_000
#: Characters of any one text: a key, a description, a reason, a string value.
MAX_TEXT_LENGTH = 100_000
#: Characters of a name (state, event, variable, role, permission, handler, ...).
MAX_NAME_LENGTH = 200
#: Characters of one expression (guard, assignment, invariant).
MAX_EXPRESSION_LENGTH = 10_000
#: Digits of a number, as written and as a value: an integer is below ``10**MAX_DIGITS`` in
#: magnitude; a decimal has at most this many digits before and after its point.
MAX_DIGITS = 100
#: Decimal places a `decimal` type may declare (`places`).
MAX_PLACES = 28
#: Entries of one list inside a spec: an enum's values, a role's permissions, a `from` list,
#: a set's elements, an `exclusive_roles` group.
MAX_ENTRIES = 10_000
#: The longest state timeout: 3,650 days (about ten years), so every deadline is a date.
MAX_DURATION_SECONDS = 3_650 * 24 * 3_600
#: Problems collected before loading stops (a document with a million broken parts).
MAX_PROBLEMS = 1_000
#: Candidate comparisons spent on "did you mean" hints in one load; beyond it, no hints.
MAX_HINT_WORK = 50_000
