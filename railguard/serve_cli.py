"""``railguard serve``: verified workflows served to agents over the Model Context Protocol.

``railguard serve SPEC... --db FILE|--dsn URL --directory FILE [--effects MODULE:NAME]
[--certificate FILE --trust KEY.pub | --allow-unverified REASON] [--transport stdio|http]``

- ``--transport stdio`` (the default) serves one client over stdin/stdout as the principal
  fixed at launch: ``--actor ID`` (a principal of the directory, with the directory's roles;
  ``--roles R1,R2`` only narrows them, never adds one).
- ``--transport http --port N [--host 127.0.0.1]`` serves streamable HTTP at
  ``http://HOST:N/mcp``: each request's principal is the one whose token digest the directory
  lists for its ``Authorization: Bearer`` token; no token or an unknown one is answered 401.

``railguard serve --hash-token`` reads a token from stdin and prints the digest a directory
file stores for it (``sha256:<hex>``). Exit codes: 0 served until the client left (or
interrupted), 2 unusable input — one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_commands"]


def add_commands(subparsers: Any) -> None:
    """Add ``serve`` to a parser's subparsers."""
    from railguard.runtime_cli import _add_engine, _add_store

    serve = subparsers.add_parser("serve", help="serve verified workflows to agents over MCP (stdio or HTTP)")
    serve.add_argument("spec", nargs="*", metavar="SPEC", help="the specs served (each workflow once; all on one store)")
    _add_store(serve)
    _add_engine(serve)
    serve.add_argument("--also-certificate", metavar="FILE", action="append", default=[], help="the certificate of a further SPEC (each matched to its spec by content hash)")
    serve.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    serve.add_argument("--actor", metavar="ID", help="stdio: the principal every call acts as (from the directory)")
    serve.add_argument("--roles", metavar="R1,R2", help="stdio: narrow the actor's roles to these (never more than the directory gives)")
    serve.add_argument("--host", default="127.0.0.1", help="http: the address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, metavar="N", help="http: the port to listen on (default 8000)")
    serve.add_argument("--max-body", type=int, default=None, metavar="BYTES", help="http: the largest request body accepted (default 1,000,000; larger get 413)")
    serve.add_argument("--access-log", metavar="ID", default=None, help="the instance id of the gateway's access log in the store")
    serve.add_argument("--hash-token", action="store_true", help="read a bearer token from stdin and print the digest a directory stores for it")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from railguard._cliutil import fail

    if args.hash_token:
        return _hash_token(args)
    if not args.spec:
        return fail("give at least one SPEC to serve (or --hash-token)")
    try:
        return _serve(args)
    except KeyboardInterrupt:
        print("railguard: interrupted", file=sys.stderr)
        return 130


def _hash_token(args: argparse.Namespace) -> int:
    from railguard._cliutil import fail
    from railguard.runtime.gateway import token_digest

    token = sys.stdin.readline().strip()
    if not token:
        return fail("--hash-token reads the token from stdin, and it was empty")
    print(token_digest(token))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from railguard._cliutil import fail
    from railguard.runtime.gate import PlanGateway
    from railguard.runtime.gateway import ACCESS_LOG, Gateway
    from railguard.runtime_cli import _engine, _load_spec, _store
    from railguard.verifier.admission import Gate

    if not args.directory:
        return fail("give the --directory FILE of principals and their roles (and, for HTTP, their token digests)")
    if args.transport == "stdio" and not args.actor:
        return fail("on stdio every call acts as one principal: give --actor ID (a principal of the directory)")
    if args.transport == "http" and (args.actor or args.roles):
        return fail("over HTTP each request's principal is its bearer token's: --actor and --roles are for stdio")
    specs = [_load_spec(path) for path in args.spec]
    certificates = _certificates(args, specs)
    with _store(args, must_exist=False) as store:
        served: list[PlanGateway] = []
        for spec in specs:
            one = argparse.Namespace(**vars(args))
            one.certificate = certificates.get(spec.content_hash)
            engine = _engine(one, spec, store)
            served.append(PlanGateway(engine, _gate(Gate, spec, one)))
        gateway = Gateway(specs[0], served[0].engine, gate=served[0].gate, more=served[1:], access_log=args.access_log or ACCESS_LOG)
        if args.transport == "stdio":
            from railguard.mcp_server import serve_stdio

            roles = None if args.roles is None else [r.strip() for r in args.roles.split(",") if r.strip()]
            principal = gateway.principal(args.actor, roles)
            print(f"railguard serve: stdio, acting as `{principal.id}` ({', '.join(sorted(principal.roles)) or 'no roles'})", file=sys.stderr, flush=True)
            serve_stdio(gateway, principal)
        else:
            from railguard.mcp_server import MAX_BODY, serve_http

            serve_http(gateway, host=args.host, port=args.port, max_body=args.max_body or MAX_BODY)
    return 0


def _certificates(args: argparse.Namespace, specs: list[Any]) -> dict[str, str]:
    """Certificate file per spec content hash: ``--certificate`` and each ``--also-certificate``."""
    from railguard.runtime_cli import UsageError
    from railguard.verifier.certificate import load_certificate

    files = ([args.certificate] if args.certificate else []) + list(args.also_certificate)
    found: dict[str, str] = {}
    for path in files:
        certificate = load_certificate(path)
        found[certificate.content_hash] = path
    if files:
        missing = [spec.name for spec in specs if spec.content_hash not in found]
        if missing:
            raise UsageError(f"no certificate given is for spec `{missing[0]}`: give its certificate with --also-certificate FILE")
    return found


def _gate(gate: Any, spec: Any, args: argparse.Namespace) -> Any:
    from railguard.verifier.certificate import load_certificate
    from railguard.verifier.keys import TrustSet

    certificate = load_certificate(args.certificate) if args.certificate else None
    trusted = TrustSet.load(args.trust or ()) if certificate is not None else None
    return gate(spec, certificate, trusted_keys=trusted, allow_unverified=args.allow_unverified)
