"""Secrets in a config are never shown: every repr and str of a config redacts them.

A model's ``parameters`` is a :class:`Parameters` mapping: a plain dict to read (the
provider takes its key from it), whose repr and str redact the values of secret-looking keys
(``api_key``, ``token``, ``password``, ``Authorization``, ...), at any depth, and the password
of any URL. The config object is handed to every action, and an action that logs its config,
or a traceback that shows it, must not leak a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "Parameters", "is_secret_key", "redacted", "secret_values"]

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(api[_-]?key|apikey|token|secret|password|passwd|authorization|credential|private[_-]?key)",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@", re.I
)
# A bearer credential as a header writes it (RFC 6750's b64token). Only one shaped like a
# credential is hidden, never a word: "Missing bearer authentication" is an upstream's own
# explanation, and a key the config holds is hidden by its value wherever it appears.
_BEARER = re.compile(r"\b(?P<scheme>Bearer)\s+(?P<token>[A-Za-z0-9._~+/-]+=*)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]{1,19}")


def _hide_bearer(match: re.Match[str]) -> str:
    if _WORD.fullmatch(match.group("token")):
        return match.group()  # a word (letters only, short): not a credential
    return f"{match.group('scheme')} {REDACTED}"


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def _secret_values(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if is_secret_key(k) and isinstance(v, str) and len(v) >= 4:
                found.add(v)
            else:
                _secret_values(v, found)
    elif isinstance(value, list | tuple):
        for v in value:
            _secret_values(v, found)
    elif isinstance(value, str):
        found.update(
            m.group("password") for m in _URL_PASSWORD.finditer(value) if m.group("password")
        )
    return found


def secret_values(value: Any) -> set[str]:
    """The secrets held in ``value``: values of secret-looking keys, and URL passwords."""
    return _secret_values(value, set())


def redacted(value: Any, *, secrets: Iterable[str] = ()) -> Any:
    """``value`` with secrets replaced by ``***``: for showing, never for use.

    Secret-looking keys lose their values, URLs their passwords, and a secret's value is
    hidden wherever else it appears (``"Bearer <key>"`` under an innocent key). ``secrets``
    are more values to hide wherever they appear: a key that came from the environment, when
    ``value`` is, say, an upstream's error message that echoes it.
    """
    found = _secret_values(value, set()) | {s for s in secrets if len(s) >= 4}
    return _redact(value, sorted(found, key=len, reverse=True))


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: REDACTED if is_secret_key(k) else _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, secrets) for v in value)
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(rf"\g<scheme>\g<user>:{REDACTED}@", value)
        value = _BEARER.sub(_hide_bearer, value)
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    return value


class Parameters(dict[str, Any]):
    """A model's parameters: a dict whose repr and str never show a secret."""

    def __repr__(self) -> str:
        return repr(redacted(dict(self)))

    __str__ = __repr__
