"""An opt-in guard for http(s) downloads: connect only to public addresses.

A service that fetches whatever URI a request names would otherwise fetch from inside its own
network for anyone who can send a request: a cloud's metadata address (169.254.169.254), a
database port on localhost, an internal artifact store. With `POLICYEVAL_HTTP_PUBLIC_ONLY` set,
every connection, redirects included, resolves the host itself, refuses it if any of its addresses
is not globally routable, and connects to the address it checked (so a second DNS answer cannot
swap in a private one). Proxies from the environment are not used then: a proxy would hide where
the connection goes.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.request
from typing import Any

PUBLIC_ONLY_VAR = "POLICYEVAL_HTTP_PUBLIC_ONLY"
_ON = {"1", "true", "yes", "on"}


class PrivateAddress(Exception):
    """A host resolved to an address that is not public. Deliberately not an OSError: urllib
    would wrap that as "unreachable" and the source would fall back to a cached copy."""


def enabled(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(PUBLIC_ONLY_VAR, "")
    return value.strip().lower() in _ON


def is_public(address: str) -> bool:
    """Whether `address` (an IP literal, an IPv6 zone allowed) is globally routable."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    return ip.is_global and not ip.is_multicast


def _connect(address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT, source: Any = None):
    """socket.create_connection, to addresses checked first and used as checked."""
    host, port = address
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in found:
        if not is_public(sockaddr[0]):
            raise PrivateAddress(f"{host} resolves to {sockaddr[0]}, which is not a public address")
    error: OSError | None = None
    for *_, sockaddr in found:
        try:
            return socket.create_connection((sockaddr[0], port), timeout, source)
        except OSError as exc:
            error = exc
    raise error or OSError(f"{host}: no address")


def _guarded(connection_class: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        connection = connection_class(*args, **kwargs)
        connection._create_connection = _connect  # TLS still verifies the host's name
        return connection

    return make


class _Http(urllib.request.HTTPHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_guarded(http_class), req, **kwargs)


class _Https(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(_guarded(http_class), req, **kwargs)


class _Redirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        # urllib follows a redirect to ftp:// too, whose connections this guard never sees.
        scheme = newurl.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise PrivateAddress(f"a redirect to {scheme}:// is not followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener() -> urllib.request.OpenerDirector:
    """An opener whose every connection goes to public addresses only: http and https alone
    (no ftp, file or data handlers), redirects included."""
    director = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler({}),
        _Http(),
        _Https(),
        _Redirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        director.add_handler(handler)
    return director
