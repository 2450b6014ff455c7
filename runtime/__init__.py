"""railguard.runtime — deterministic, durable, audited execution of verified specs.

The engine, stores, audit log and plan gateway land with the runtime issue; this package
is the fixed home of that layer and depends on :mod:`railguard.spec` and
:mod:`railguard.verifier` only.
"""

__all__: list[str] = []
