"""X-Forwarded-For is believed only from a trusted proxy (WEIGHTSMITH_TRUSTED_PROXIES).

The rule (service/client_address.py) and what it decides: the failed-authentication limit
and the rate limit of requests without a key, per client address.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from flask_openapi3 import OpenAPI

from config.settings import Limits, Settings
from service.app import create_app
from service.client_address import client_address, parse_address
from tests.service.conftest import TEST_LIMITS
from tests.service.helpers import assert_problem

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # untrusted peer: header ignored
    ("203.0.113.7", None, "203.0.113.7"),
    ("10.1.2.3", None, "10.1.2.3"),  # a trusted peer without the header is the client
    ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
    ("10.1.2.3", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # two trusted proxies
    ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client's own entry ignored
    ("10.1.2.3", "6.6.6.6,198.51.100.1,10.0.0.9", "198.51.100.1"),
    ("10.1.2.3", "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # all trusted: the farthest
    ("10.1.2.3", "198.51.100.1, garbage", "10.1.2.3"),  # not an address: last trusted hop
    ("10.1.2.3", "garbage, 10.0.0.9", "10.0.0.9"),
    ("10.1.2.3", "198.51.100.1:4711", "198.51.100.1"),  # with a port
    ("10.1.2.3", "[2001:db8::1]:443", "2001:db8::1"),
    ("fd00::5", "2001:db8::1", "2001:db8::1"),  # IPv6 proxy
    ("10.1.2.3", "", "10.1.2.3"),
    ("", "198.51.100.1", ""),  # no peer at all (not a socket): nothing believed
], ids=["untrusted peer", "untrusted, no header", "trusted, no header", "trusted",
        "two proxies", "spoofed entry", "spoofed entry, two proxies", "only proxies",
        "garbage hop", "garbage far left", "port", "bracketed v6", "v6 proxy", "empty header",
        "no peer"])
def test_the_client_is_the_first_untrusted_hop_from_the_right(
        peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"


@pytest.mark.parametrize("text", ["", "x", "1.2.3", "::g", "[x]:80", "1.2.3.4:80:90",
                                  "unknown", "_hidden"])
def test_what_is_not_an_address_parses_to_none(text: str) -> None:
    assert parse_address(text) is None


def test_the_setting_reads_cidrs_and_names_a_bad_one() -> None:
    settings = Settings.from_env({"WEIGHTSMITH_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1,::1"})
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32",
                                                          "::1/128"]
    assert Settings.from_env({}).trusted_proxies == ()
    with pytest.raises(ValueError, match=r"WEIGHTSMITH_TRUSTED_PROXIES: 'proxy\.local'"):
        Settings.from_env({"WEIGHTSMITH_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"})


def app_with_proxies(tmp_path: Path, proxies: str) -> OpenAPI:
    from store.migrate import upgrade_to_head

    limits = Limits(**{**TEST_LIMITS.__dict__, "auth_failure_limit": "2 per minute"})
    settings = Settings.from_env({"WEIGHTSMITH_DATA_DIR": str(tmp_path),
                                  "WEIGHTSMITH_TRUSTED_PROXIES": proxies})
    settings = settings.with_overrides(limits=limits)
    upgrade_to_head(settings.database_url)
    return create_app(settings, testing=True)


def failures(app: OpenAPI, peer: str, forwarded: list[str]) -> list[int]:
    """One request with a wrong key per X-Forwarded-For value, from `peer`: the statuses."""
    client = app.test_client()
    return [client.get("/v1/jobs", headers={"Authorization": f"Bearer wrong{i}",
                                            "X-Forwarded-For": value},
                       environ_base={"REMOTE_ADDR": peer}).status_code
            for i, value in enumerate(forwarded)]


def test_an_untrusted_peer_cannot_escape_the_failure_limit_with_the_header(
        tmp_path: Path) -> None:
    """A new X-Forwarded-For per request gave a client a fresh budget; from a peer that is
    not a trusted proxy the header is ignored, so the address's budget is spent at 2."""
    app = app_with_proxies(tmp_path, "10.0.0.0/8")
    statuses = failures(app, "203.0.113.7", [f"198.51.100.{i}" for i in range(5)])
    assert statuses == [401, 401, 429, 429, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_failure_budget(
        tmp_path: Path) -> None:
    app = app_with_proxies(tmp_path, "10.0.0.0/8")
    # Three clients behind one proxy: each has its own 2 failures, not one shared budget.
    assert failures(app, "10.0.0.2", ["198.51.100.1"] * 3) == [401, 401, 429]
    assert failures(app, "10.0.0.2", ["198.51.100.2"] * 2) == [401, 401]
    # A client spoofing an entry left of the proxy's is still the proxy's view of it.
    spoofed = failures(app, "10.0.0.2", [f"6.6.6.{i}, 198.51.100.1" for i in range(2)])
    assert spoofed == [429, 429]
    refused = app.test_client().get(
        "/v1/jobs", headers={"Authorization": "Bearer x", "X-Forwarded-For": "198.51.100.1"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert "failed authentications" in assert_problem(refused, 429)["detail"]


def test_without_the_setting_a_proxy_is_one_client(tmp_path: Path) -> None:
    """The default: X-Forwarded-For is ignored, every client behind a proxy shares its
    address (safe, if coarse)."""
    app = app_with_proxies(tmp_path, "")
    assert failures(app, "10.0.0.2", ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) \
        == [401, 401, 429]
