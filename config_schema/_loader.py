"""Reading config folders and YAML text into a :class:`RailsConfig`, with every problem located.

The YAML is read with ruamel's round-trip loader so each node keeps its line (``_yaml_source``);
NeMo's settings are refused, ignored or rewritten (``_nemo_compat``), ``${VAR}`` expanded
(``_env``); cattrs then structures plain data, and each problem it (or a cross-field check,
``_checks``) finds is placed back at the line of the key it concerns:
``config.yml:12: rails.output.streaming.chunk_size: ...``.

The class to build is handed in by ``RailsConfig.from_path`` / ``from_content``: the models
import this module, so it does not import them.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

import attrs
from cattrs.errors import BaseValidationError

from ._actions import load_actions_file
from ._checks import semantic_problems
from ._converter import Path, make_converter, structure_problems, type_name
from ._env import interpolate, unset_key_variables
from ._errors import ConfigError, ConfigIgnoredWarning, ConfigProblem
from ._nemo_compat import ignored_settings, nemo_models, not_supported_problems
from ._yaml_source import Document, format_path, parse_document, plain, read_source

if TYPE_CHECKING:  # handed in by RailsConfig's classmethods: the models import this module
    from ._models import RailsConfig

__all__ = ["CONFIG_NAMES", "load_content", "load_path", "locate"]

_CONVERTER = make_converter()

CONFIG_NAMES = ("config.yml", "config.yaml")
PROMPTS_NAMES = ("prompts.yml", "prompts.yaml")


def _drop(data: Any, path: Path) -> bool:
    """Delete the value at ``path`` if it is there; True if something was deleted."""
    for key in path[:-1]:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return False
    if path and isinstance(data, dict) and path[-1] in data:
        del data[path[-1]]
        return True
    return False


def _build(
    config_class: type[RailsConfig],
    config_doc: Document,
    prompts_doc: Document | None,
    *,
    actions: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> RailsConfig:
    problems: list[ConfigProblem] = []

    def report(doc: Document, path: Path, problem: str) -> None:
        problems.append(
            ConfigProblem(
                file=doc.file, line=doc.line(path), path=format_path(path), problem=problem
            )
        )

    data = plain(config_doc.root)
    for path, problem in not_supported_problems(data):
        report(config_doc, path, problem)
    nemo_engines: dict[int, str] = {}
    for path, problem in nemo_models(data, nemo_engines):
        report(config_doc, path, problem)
    ignored = [
        ConfigProblem(
            file=config_doc.file,
            line=config_doc.line(path),
            path=format_path(path),
            problem=f"ignored: {why}",
        )
        for path, why in ignored_settings(data)
    ]
    # Endpoints and model names often come from the environment (one config, many deployments).
    if isinstance(data.get("models"), list):
        for path, problem in interpolate(data["models"], ("models",), os.environ):
            report(config_doc, path, problem)
    # A key named by its variable, unset: stopped here as an unset ${VAR} is, with its line.
    for path, problem in unset_key_variables(data, os.environ):
        report(config_doc, path, problem)

    # Prompts from prompts.yml are appended to config.yml's; remember where each one came from.
    prompt_origin: list[tuple[Document, int]] = [
        (config_doc, i)
        for i in range(len(data["prompts"]) if isinstance(data.get("prompts"), list) else 0)
    ]
    if prompts_doc is not None:
        extra = plain(prompts_doc.root)
        for path, problem in not_supported_problems(extra):
            report(prompts_doc, path, problem)
        for key in extra:
            if key != "prompts":
                report(prompts_doc, (key,), "unknown key (prompts.yml holds only prompts)")
        more = extra.get("prompts", [])
        if not isinstance(more, list):
            report(prompts_doc, ("prompts",), f"expected a list, got {type_name(more)}")
        elif isinstance(data.get("prompts", []), list):
            prompt_origin += [(prompts_doc, i) for i in range(len(more))]
            data["prompts"] = [*data.get("prompts", []), *more]

    def locate(path: Path, problem: str) -> None:
        if (
            len(path) >= 2
            and path[0] == "prompts"
            and isinstance(path[1], int)
            and path[1] < len(prompt_origin)
        ):
            doc, index = prompt_origin[path[1]]
            report(doc, ("prompts", index, *path[2:]), problem)
        else:
            report(config_doc, path, problem)

    config: RailsConfig | None = None
    # Mappings where a wrong-typed value was dropped: their other rules would see a default.
    unreliable: set[Path] = set()
    try:
        config = _CONVERTER.structure(data, config_class)
    except BaseValidationError as exc:
        shape_problems = list(structure_problems(exc))
        for path, problem in shape_problems:
            locate(path, problem)
        # Report the cross-field problems too, in one pass: check what is left once the
        # keys in error are dropped.
        pruned = copy.deepcopy(data)
        for path, problem in shape_problems:
            if _drop(pruned, path) and problem != "unknown key":
                unreliable.add(path[:-1])
        try:
            config = _CONVERTER.structure(pruned, config_class)
        except BaseValidationError:
            config = None
    if config is not None and nemo_engines:
        models = tuple(
            attrs.evolve(m, nemo_engines=(nemo_engines[i],)) if i in nemo_engines else m
            for i, m in enumerate(config.models)
        )
        config = attrs.evolve(config, models=models)
    if config is not None:
        tasks = [p.task for p in config.prompts]
        # With the folder's actions: an action of a built-in's name replaces that built-in.
        for path, problem in semantic_problems(
            attrs.evolve(config, actions=dict(actions or {})), tasks
        ):
            if path[:-1] not in unreliable:
                locate(path, problem)
        if problems:
            config = None
    if problems:
        problems.sort(key=lambda p: (p.file != config_doc.file, p.file, p.line or 0))
        raise ConfigError(dict.fromkeys(problems))
    assert config is not None
    for setting in ignored:  # only for a config that loads: an error says more than these
        warnings.warn(str(setting), ConfigIgnoredWarning, stacklevel=4)
    return attrs.evolve(config, actions=dict(actions or {}), source=source)


def load_content(
    config_class: type[RailsConfig],
    yaml_content: str,
    *,
    prompts_content: str | None = None,
    colang_content: str | None = None,
) -> RailsConfig:
    """Load a ``config_class`` from the text of a config.yml (and optionally of a prompts.yml)."""
    if colang_content:
        raise ConfigError(
            [
                ConfigProblem(
                    file="<colang_content>",
                    line=None,
                    path="",
                    problem="Colang is not supported by railstream",
                )
            ]
        )
    config_doc = parse_document(yaml_content, "<yaml_content>")
    prompts_doc = parse_document(prompts_content, "<prompts_content>") if prompts_content else None
    return _build(config_class, config_doc, prompts_doc)


def load_path(config_class: type[RailsConfig], path: str | os.PathLike[str]) -> RailsConfig:
    """Load a ``config_class`` from a config folder (config.yml, prompts.yml, actions.py) or
    a single YAML file."""
    root = FsPath(path)
    if root.is_file():
        return _build(
            config_class, parse_document(read_source(root), str(root)), None, source=str(root)
        )
    if not root.is_dir():
        raise ConfigError(
            [
                ConfigProblem(
                    file=str(root), line=None, path="", problem="no such config folder or file"
                )
            ]
        )

    problems: list[ConfigProblem] = []
    config_file = next((root / n for n in CONFIG_NAMES if (root / n).is_file()), None)
    prompts_file = next((root / n for n in PROMPTS_NAMES if (root / n).is_file()), None)
    if config_file is None:
        problems.append(
            ConfigProblem(
                file=str(root), line=None, path="", problem="no config.yml in this folder"
            )
        )
    for entry in sorted(root.iterdir()):
        if entry.suffix == ".co":
            problems.append(
                ConfigProblem(
                    file=str(entry),
                    line=None,
                    path="",
                    problem="Colang files are not supported by railstream",
                )
            )
        elif entry.suffix in (".yml", ".yaml") and entry not in (config_file, prompts_file):
            problems.append(
                ConfigProblem(
                    file=str(entry),
                    line=None,
                    path="",
                    problem="not read by railstream: move its settings into config.yml or prompts.yml",
                )
            )
    if problems:
        raise ConfigError(problems)
    assert config_file is not None

    config_doc = parse_document(read_source(config_file), str(config_file))
    prompts_doc = (
        parse_document(read_source(prompts_file), str(prompts_file)) if prompts_file else None
    )
    actions_file = root / "actions.py"
    actions = load_actions_file(actions_file) if actions_file.is_file() else {}
    return _build(config_class, config_doc, prompts_doc, actions=actions, source=str(root))


def locate(source: str | None, path: Path, problem: str) -> ConfigProblem:
    """A problem found once a config is in use (a flow that no action serves), placed at the
    line of ``path`` in the config's file, as the problems found while loading are.

    ``source`` is the loaded config's (``RailsConfig.source``): a folder, a YAML file, or None
    for a config given as text, which has no file to point into.
    """
    where = format_path(path)
    if source is None:
        return ConfigProblem(file="<yaml_content>", line=None, path=where, problem=problem)
    root = FsPath(source)
    file = (
        root
        if root.is_file()
        else next((root / n for n in CONFIG_NAMES if (root / n).is_file()), root / CONFIG_NAMES[0])
    )
    try:
        doc = parse_document(read_source(file), str(file))
    except ConfigError:  # gone or changed since it loaded: the problem stands without its line
        return ConfigProblem(file=str(file), line=None, path=where, problem=problem)
    return ConfigProblem(file=doc.file, line=doc.line(path), path=where, problem=problem)
