"""The configs a server serves: one ``LLMRails`` per config folder, looked up by id."""

from __future__ import annotations

import re
from pathlib import Path

from railstream.config_schema import CONFIG_NAMES, ConfigError, RailsConfig
from railstream.facade import LLMRails
from railstream.stages import RailstreamError

from ._upstream import Redactor
from ._wire import HttpError

__all__ = ["ConfigRegistry", "ServerSetupError"]

# A config id is a folder name: no separators, no "..", nothing a path could be made of.
# Matched whole (fullmatch): "$" alone would let "guarded\n" through.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ServerSetupError(RailstreamError):
    """The server cannot start: a config is invalid, or none was found."""


def _is_config(folder: Path) -> bool:
    return any((folder / name).is_file() for name in CONFIG_NAMES)


class ConfigRegistry:
    """Config ids to their ``LLMRails``; every config is loaded (and checked) at start.

    ``redactor`` hides every config's model endpoints and secrets from what clients are sent.
    """

    def __init__(self, rails: dict[str, LLMRails], default_id: str | None = None) -> None:
        if default_id is not None and default_id not in rails:
            raise ServerSetupError(
                f"--default-config-id {default_id!r} is not one of: {', '.join(rails)}"
            )
        self._rails = rails
        self.redactor = Redactor(r.config for r in rails.values())
        # With one config, it serves every request that names none.
        self.default_id = default_id or (next(iter(rails)) if len(rails) == 1 else None)

    @classmethod
    def load(cls, directory: str | Path, default_id: str | None = None) -> ConfigRegistry:
        root = Path(directory)
        if not root.is_dir():
            raise ServerSetupError(f"{root}: no such folder")
        folders = (
            [root]
            if _is_config(root)
            else [p for p in sorted(root.iterdir()) if p.is_dir() and _is_config(p)]
        )
        if not folders:
            raise ServerSetupError(f"{root}: no config.yml in it or in its subfolders")
        rails: dict[str, LLMRails] = {}
        problems: list[str] = []
        for folder in folders:
            config_id = folder.resolve().name
            if not _ID.fullmatch(config_id):
                problems.append(
                    f"{folder}: {config_id!r} cannot be a config id (letters, digits, _ . -)"
                )
                continue
            try:
                loaded = LLMRails(RailsConfig.from_path(folder))
                # Resolved now, not at the first request: a flow with no rail behind it would
                # answer every request with a 500 (that clients retry).
                loaded.check()
                rails[config_id] = loaded
            except ConfigError as exc:
                problems.append(str(exc))
            except (TypeError, ValueError) as exc:
                problems.append(f"{folder}: {exc}")
        if problems:
            # A config that fails to load is never skipped: its rails would silently be missing.
            raise ServerSetupError("\n".join(problems))
        return cls(rails, default_id)

    @property
    def ids(self) -> list[str]:
        return list(self._rails)

    def rails(self, config_id: str) -> LLMRails:
        """The facade serving ``config_id`` (one of :attr:`ids`)."""
        return self._rails[config_id]

    def resolve(self, config_id: str | None, model: str | None) -> tuple[str, LLMRails]:
        """The config for a request: ``config_id``, else a ``model`` naming one, else the default."""
        if config_id is not None:
            if not _ID.fullmatch(config_id):
                raise HttpError(
                    400, f"config_id {config_id!r} is not a config id", param="config_id"
                )
            chosen = config_id
        elif model is not None and model in self._rails:
            chosen = model
        elif self.default_id is not None:
            chosen = self.default_id
        else:
            raise HttpError(
                400,
                f"name a config: config_id, guardrails.config_id, or model (one of: {', '.join(self._rails)})",
                param="config_id",
            )
        rails = self._rails.get(chosen)
        if rails is None:
            raise HttpError(
                404,
                f"no config {chosen!r} (available: {', '.join(self._rails)})",
                param="config_id",
                code="config_not_found",
            )
        return chosen, rails

    async def aclose(self) -> None:
        for rails in self._rails.values():
            await rails.aclose()
