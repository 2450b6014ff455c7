"""Hand-written implementations of the example workflows, written without railguard, each with
an adapter for :mod:`railguard.verifier.conformance`.

Each module has a correct service and the same service with deliberate bugs switched on by
name (``BUGS``): the conformance test must catch every bug with a short run.
"""

from __future__ import annotations


class Refused(Exception):
    """The service refused a request; nothing changed."""
