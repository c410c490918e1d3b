"""The dashboard's guards: where it may listen, the access token, the Host
header, CSRF tokens, and the security headers of every response.

* Binding: loopback addresses need no token; any other address does
  (``check_binding``).
* Token: with one set, every request must carry it, as ``Authorization:
  Bearer TOKEN`` (scripts, Prometheus) or as the password of HTTP Basic
  authentication (browsers ask for it; the user name is ignored). It is
  compared in constant time; a request without it gets 401.
* Host: bound to loopback, only requests addressed to a loopback name are
  served (a page elsewhere cannot reach the dashboard by rebinding its DNS
  name to 127.0.0.1); ``allowed_hosts`` adds names.
* CSRF: each session gets a random token (kept in its signed, SameSite=
  Strict session cookie); every form carries it and every POST must send
  it back (``csrf_matches``), else 403.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class BindingError(ValueError):
    """The dashboard may not listen where it was asked to, as configured."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse a bind address other than loopback without a token, and a
    token too short to resist guessing."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise BindingError(
            f"the dashboard token must be at least {MIN_TOKEN_LENGTH} characters, got {len(token)}"
            " (make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if token is None and not is_loopback(host):
        raise BindingError(
            f"binding to {host} serves the dashboard beyond this machine: give it a token "
            "(--token or PGTQ_DASHBOARD_TOKEN), or bind to 127.0.0.1"
        )


def presented_token(authorization: str | None) -> str | None:
    """The token an ``Authorization`` header carries (Bearer, or the
    password of Basic), or None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, separator, password = decoded.partition(":")
        return password if separator else None
    return None


def token_matches(presented: str | None, token: str) -> bool:
    """Whether the presented token is ``token``, compared in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8"))


def host_name(host_header: str | None) -> str:
    """The name of a Host header without its port (IPv6 brackets removed)."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_host_names(bind_host: str, extra: Iterable[str]) -> frozenset[str] | None:
    """The Host names to serve (None: any), for a server bound to ``bind_host``."""
    names = {name.strip().lower().strip("[]") for name in extra if name.strip()}
    if is_loopback(bind_host):
        return frozenset(LOOPBACK_NAMES | names)
    return frozenset(names) if names else None


def new_csrf_token() -> str:
    """A fresh random CSRF token for a session."""
    return secrets.token_urlsafe(32)


def csrf_matches(sent: object, expected: object) -> bool:
    """Whether a form's CSRF token is the session's, in constant time."""
    if not isinstance(sent, str) or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """ASGI middleware in front of the whole app: checks the Host header
    and the token, and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        if self.allowed_hosts is not None and host_name(headers.get("host")) not in self.allowed_hosts:
            await _refuse(send, 400, "Bad Request: this dashboard does not serve that host name.\n")
            return
        if self.token is not None and not token_matches(
            presented_token(headers.get("authorization")), self.token
        ):
            await _refuse(
                send,
                401,
                "Unauthorized: this dashboard needs its token (HTTP Basic password or Bearer).\n",
                [(b"www-authenticate", b'Basic realm="pgtq dashboard", charset="UTF-8"')],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in SECURITY_HEADERS.items()
                    if name.encode() not in present
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *[(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()],
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
