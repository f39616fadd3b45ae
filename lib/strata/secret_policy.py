"""Where secrets may come from: the environment (or a secret scope mapped into it), never a config value.

A config is dumped whole into every run manifest and echoed by ``strata config`` and by validation errors, so
a key written into it would end up in files and logs. These helpers find what looks like a secret in a
config document (a key-like field name, credentials inside a URL) so it can be refused *without* showing
the value, and blank such values out of anything that is about to be shown. No dependency on the rest of
the package (``strata.config`` and ``strata.judge.backends`` both use it).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

# Field names that hold a secret. ``*_env`` fields hold the *name* of an environment variable and are fine.
_SECRET_NAME = re.compile(
    r"api[_-]?key|apikey|secret|passw(?:or)?d|(?:^|[_-])pwd$|(?:^|[_-])token$|access[_-]?key|private[_-]?key"
    r"|credential|bearer|authorization|(?:^|[_-])auth$",
    re.IGNORECASE,
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# user:password@ in any URL; any user@ in an http(s)/Spark Connect URL (tokens ride as user names).
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]*:[^/?#@\s]*@")
_URL_USER_HTTP = re.compile(r"^(?:https?|sc)://[^/?#@\s]+@", re.IGNORECASE)
# Query / Spark Connect (";token=...") parameters that carry a credential.
_URL_PARAM = re.compile(
    r"[?&;]\s*(?:token|access_token|auth_token|api[_-]?key|apikey|key|secret|client_secret|password|passwd"
    r"|pwd|sig|signature|x-amz-signature|x-amz-credential)\s*=",
    re.IGNORECASE,
)
HIDDEN = "<not shown>"


def is_secret_name(name: object) -> bool:
    n = str(name)
    if n.lower().endswith("_env"):
        return False
    return bool(_SECRET_NAME.search(n))


def url_credential(value: object) -> str | None:
    """Why ``value`` (a URL) carries a credential, or None."""
    if not isinstance(value, str) or "://" not in value:
        return None
    value = value.strip()
    if _URL_PASSWORD.match(value) or _URL_USER_HTTP.match(value):
        return "a user/password in the URL"
    if _URL_PARAM.search(value):
        return "a token/key parameter in the URL"
    return None


def _walk(doc: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted path, last key, value) of every entry of a nested dict/list document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            yield path, str(k), v
            yield from _walk(v, path)
    elif isinstance(doc, (list, tuple)):
        for i, v in enumerate(doc):
            path = f"{prefix}[{i}]"
            yield path, "", v
            yield from _walk(v, path)


def find_secret_fields(doc: Any) -> list[str]:
    """Dotted paths of key-like field names in a config document (whatever their value)."""
    return [path for path, key, _ in _walk(doc) if key and is_secret_name(key)]


def find_url_credentials(doc: Any) -> list[tuple[str, str]]:
    """(dotted path, reason) of every string value that is a URL carrying credentials."""
    out = []
    for path, _, v in _walk(doc):
        why = url_credential(v)
        if why:
            out.append((path, why))
    return out


def redact(obj: Any, key: str = "") -> Any:
    """A copy with values under key-like names, ``*_env``-named values that are not variable names, and URLs
    with credentials replaced by ``<not shown>``: safe to put in an error message or a log line."""
    if key and is_secret_name(key):
        return HIDDEN
    if key.lower().endswith("_env") and isinstance(obj, str) and not ENV_NAME.match(obj):
        return HIDDEN
    if isinstance(obj, dict):
        return {k: redact(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact(v) for v in obj)
    if url_credential(obj):
        return HIDDEN
    return obj
