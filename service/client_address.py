"""The client address of a request: the one place `X-Forwarded-For` is read.

What is keyed on the client's address (failed authentications, service/auth.py; the rate
limit of a request without a key, service/limits.py; every `request.remote_addr`) reads
`REMOTE_ADDR`, which the server sets to the connection's peer. Behind a reverse proxy every
request has the proxy's address, so all clients would share one budget of failed
authentications; believing `X-Forwarded-For` from anyone would let a client pick a fresh
address per request and never be limited. So the header is read only when the peer is one of
`WEIGHTSMITH_TRUSTED_PROXIES` (CIDR networks, empty by default: the header is ignored).

From a trusted peer, the header's addresses are walked from the right (the nearest proxy
appends the address it saw last), past every address that is itself a trusted proxy; the
first one that is not is the client. Entries further left were written by the client or by
proxies we do not know and are never believed. An entry that is not an address where one is
expected stops the walk at the last trusted hop. werkzeug's ProxyFix trusts a fixed number of
hops whoever the peer is, so a client reaching the API past the proxy could spoof the header:
hence this rule, keyed on the peer.

`ClientAddress` wraps the WSGI application (service/app.py) and sets `REMOTE_ADDR` to the
client address before Flask sees the request, keeping the peer in `PEER_KEY`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from config.settings import Network

PEER_KEY = "weightsmith.peer_addr"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port`; else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port (an IPv6 address has two or more)
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(peer: str, forwarded_for: str | None,
                   trusted: tuple[Network, ...]) -> str:
    """The client's address for a request from `peer` carrying `forwarded_for` (the
    X-Forwarded-For values, comma-joined): see the module docstring."""
    if not forwarded_for or not is_trusted(parse_address(peer), trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")):
        address = parse_address(hop)
        if address is None:
            break  # not an address: keep the last trusted hop
        client = str(address)
        if not is_trusted(address, trusted):
            break
    return client


class ClientAddress:
    """WSGI middleware: `REMOTE_ADDR` becomes `client_address(...)`; the peer is kept."""

    def __init__(self, app: WsgiApp, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR") or ""
        environ[PEER_KEY] = peer
        environ["REMOTE_ADDR"] = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"),
                                                self.trusted)
        return self.app(environ, start_response)
