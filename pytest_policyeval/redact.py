"""Credentials in URIs never leave the process that uses them.

A private checkpoint is usually shared as `https://user:token@host/x.pt` or a presigned URL
(`?X-Amz-Signature=...`). Everything this package shows or writes (terminal, results files,
reports, W&B, published copies, the service's answer, the download cache's records, messages)
carries the URI with its password and signing parameters replaced by `***`; only the loader
sees the real one. Knows nothing of pytest.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that authorise whoever holds the URL (S3 and GCS presigned URLs, Azure SAS,
# token parameters of every spelling: private_token, job-token, client_secret, apiKey...), matched
# on the name lowercased with "-" as "_". Too broad a match only hides a harmless value.
SECRET_NAMES = frozenset({"sig", "se", "sp", "sv"})  # Azure SAS's short names, matched whole
SECRET_WORDS = re.compile(r"token|secret|passw(or)?d|signature|credential|auth|(^|_)[a-z0-9]*keys?(_|$)")


def secret_param(name: str) -> bool:
    """Whether a query parameter named `name` carries a credential."""
    normal = name.lower().replace("-", "_")
    return normal in SECRET_NAMES or SECRET_WORDS.search(normal) is not None


def redact_uri(uri: str) -> str:
    """`uri` with a userinfo password and secret query values masked; unchanged if it has none."""
    if "://" not in uri or not ("@" in uri or "?" in uri):
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:  # too malformed to parse (postgres://u:pw@[::1/db): its password still goes
        return USERINFO.sub(rf"\1{MASK}@", uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(secret_param(name) for name, _ in pairs):
            query = urlencode([(name, MASK if secret_param(name) else value) for name, value in pairs])
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# user:password@ after a scheme, found without parsing the rest
USERINFO = re.compile(r"(://[^\s:/@]*:)(\S*)@(?=[^@\s]*$)")  # to the last @: a password may hold one


def secrets_of(uri: str) -> list[str]:
    """The secret parts of a URI (a userinfo password, signing values), for masking where a
    message quotes them apart from the URI."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return [match.group(2) for match in USERINFO.finditer(uri) if len(match.group(2)) >= 4]
    found = [parts.password] if parts.password else []
    found += [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if secret_param(name)]
    return [secret for secret in found if len(secret) >= 4]


def _redacted_match(match: re.Match[str]) -> str:
    # A URL quoted in prose ends before the punctuation after it ("URI: error"): it stays.
    found = match.group(0)
    core = found.rstrip(".,:;)]}")
    return redact_uri(core) + found[len(core) :]


def redact_text(text: str, uris: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with every URL in it redacted, and the secrets of `uris` masked wherever they appear."""
    text = URL.sub(_redacted_match, text)
    for uri in uris:
        for secret in secrets_of(uri):
            text = text.replace(secret, MASK)
    return text


def redact_data(value: object, uris: list[str] | tuple[str, ...] = ()) -> object:
    """`redact_text` through the strings of a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value, uris)
    if isinstance(value, dict):
        return {key: redact_data(item, uris) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item, uris) for item in value]
    return value
