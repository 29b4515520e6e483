"""http:// and https:// policies, with the standard library's client.

A cached copy is revalidated with its ETag / Last-Modified (a 304 costs no download); when the
server cannot be reached, the cached copy is used and the results say so (`offline: true`).
"""

from __future__ import annotations

import base64
import http.client
import re
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pytest_policyeval.policies.sources import Fetched, FetchError, public_only
from pytest_policyeval.policies.sources.cache import DataCache, blob_digest, bounded, check_announced, chunks

TIMEOUT_S = 60  # each read; the whole download has cache.DOWNLOAD_DEADLINE_S


def _without_userinfo(uri: str) -> tuple[str, dict[str, str]]:
    """The URL to ask for and its headers: `user:password@` becomes HTTP basic authentication
    (urllib would read it as part of the host name)."""
    headers = {"User-Agent": "pytest-policyeval"}
    parts = urlsplit(uri)
    if parts.username is None:
        return uri, headers
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), headers


def file_name(uri: str) -> str:
    return PurePosixPath(urlsplit(uri).path).name or "policy.pt"


class HttpSource:
    scheme = "http"

    def fetch(self, uri: str, cache: DataCache, options: Any = None) -> Fetched:
        ref = cache.ref(self.scheme, uri)
        try:
            url, headers = _without_userinfo(uri)
            request = urllib.request.Request(url, headers=headers)
            if ref and ref.get("etag"):
                request.add_header("If-None-Match", ref["etag"])
            if ref and ref.get("last_modified"):
                request.add_header("If-Modified-Since", ref["last_modified"])
            open_url = public_only.opener().open if public_only.enabled() else urllib.request.urlopen
            with open_url(request, timeout=TIMEOUT_S) as response:
                header = response.headers.get("Content-Length")
                # Only plain ASCII digits are a length ('²'.isdigit() is true, int() refuses it).
                expected = (
                    int(header) if header is not None and re.fullmatch(r"[0-9]{1,20}", header) else None
                )
                check_announced(uri, expected)

                def complete(path: Path) -> None:
                    if expected is not None and path.stat().st_size != expected:
                        raise FetchError(
                            f"{uri}: download cut short ({path.stat().st_size} of {expected} bytes)"
                        )

                path = cache.store(bounded(chunks(response), uri), file_name(uri), check=complete)
                etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        except public_only.PrivateAddress as exc:
            # Refused, not unreachable: no cached copy stands in for it.
            raise FetchError(f"{uri}: refused ({exc}; {public_only.PUBLIC_ONLY_VAR} is set)") from None
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and ref:
                return cache.cached(uri, ref)
            raise FetchError(f"{uri}: the server answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            # Unreachable, or not speaking HTTP as it should (a bad status line, a broken chunked
            # body, too many headers, a port or IPv6 address that does not parse).
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {str(exc)[:200]}"
            reason = " ".join(str(reason).split())  # what a non-HTTP peer sent may hold newlines
            if ref:
                return cache.cached(uri, ref, offline=True)
            raise FetchError(f"{uri}: cannot download ({reason}) and there is no cached copy") from None
        fetched = Fetched(uri, path, blob_digest(path), etag)
        cache.set_ref(self.scheme, uri, fetched, etag=etag, last_modified=modified)
        return fetched
