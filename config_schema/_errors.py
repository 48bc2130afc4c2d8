"""The root of railstream's exceptions, and the errors raised while loading a configuration.

``RailstreamError`` lives here, in the lowest layer, because a bad configuration is already a
railstream error; the whole tree is drawn in ``railstream.stages._errors``.

Every problem found in a configuration is collected and raised at once, one line each, so a
user fixes their config in one pass instead of one error per run.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["ConfigError", "ConfigIgnoredWarning", "ConfigProblem", "RailstreamError"]


@attrs.frozen(kw_only=True)
class ConfigProblem:
    """One problem in a configuration: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.problem}" if self.path else f"{where}: {self.problem}"


class RailstreamError(Exception):
    """Base of every exception railstream raises."""


class ConfigError(RailstreamError, ValueError):
    """A configuration that cannot be used; ``problems`` lists every reason, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigIgnoredWarning(UserWarning):
    """A NeMo Guardrails setting that tunes only what railstream does not have (dialog rails'
    sample conversation, Colang's version, ...): accepted, and ignored. One warning per key,
    ``file:line: key: ignored: why``. A setting that would define or change a rail is never
    ignored: it is a :class:`ConfigError`."""
