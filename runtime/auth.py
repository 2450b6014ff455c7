"""Who is calling: the hook through which an application's own authentication decides the
actor of every command.

The runtime never takes the actor from a model or from data a caller fills in: an
:class:`Authenticator` turns what the caller presented (a session token, a verified client
certificate's subject, a signed-in user id) into the principal id the directory knows. The
engine asks it on every ``start``, ``fire``, ``abort`` and ``retry_stuck`` when one is given.
The command line's ``--as`` is the caller's word: it is trusted (:class:`TrustedCaller`),
checked only against the directory (:class:`KnownPrincipals`) — run the command line only
where whoever can run it may act as anyone in the directory, or plug in an authenticator
(``--authenticator MODULE:NAME``).
"""

from __future__ import annotations

from typing import Protocol

from .directory import Directory, knows
from .errors import ExecutionError

__all__ = ["Authenticator", "KnownPrincipals", "NotAuthenticated", "TrustedCaller"]


class NotAuthenticated(ExecutionError):
    """The caller's credential does not prove a principal."""


class Authenticator(Protocol):
    """Turns a caller's credential into the principal id it proves."""

    def authenticate(self, credential: str) -> str:
        """The principal ``credential`` proves; raise :class:`NotAuthenticated` otherwise."""
        ...


class TrustedCaller:
    """The caller's word is its identity (what ``--as`` means on the command line)."""

    def authenticate(self, credential: str) -> str:
        return credential


class KnownPrincipals:
    """The caller's word, but only for a principal the directory knows."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    def authenticate(self, credential: str) -> str:
        if not knows(self.directory, credential):
            raise NotAuthenticated(f"`{credential}` is not a principal of the directory")
        return credential
