"""``blocklist check output``: words and regular expressions from ``rails.output.blocklist``,
matched in the text as a reader sees it (see :class:`BlocklistCheckOutput`)."""

from __future__ import annotations

import re
import unicodedata
import warnings

from railstream.config_schema import BlocklistConfig

from .._messages import Window
from ._context import RailContext, RailResult

__all__ = ["BlocklistCheckOutput", "normalise_blocklist_text"]


_WORD_CHAR = re.compile(r"\w")
# Unicode's Default_Ignorable_Code_Point set (DerivedCoreProperties.txt): what a renderer
# shows as nothing, so "for\u00adbid\u200bden" reads as "forbidden". Tag characters
# (U+E0000..) are in it too: they smuggle invisible ASCII.
_INVISIBLE = re.compile(
    r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    r"\U0001d173-\U0001d17a\U000e0000-\U000e0fff]+"
)


def normalise_blocklist_text(text: str, *, fold: bool) -> str:
    r"""``text`` as the blocklist compares it: what a reader would take to be the same text.

    Invisible characters are removed (before NFKC, so what they kept apart may compose),
    compatibility forms become plain ones (full-width letters, ligatures), every run of
    whitespace becomes one space, and with ``fold`` the case is folded.

    >>> normalise_blocklist_text("\uff2caunch\u200b  \n Code", fold=True)
    'launch code'
    """
    # ASCII holds no invisible character and is its own NFKC form; most windows are ASCII.
    if not text.isascii():
        text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
    # str.split() finds the same whitespace as \s, in a quarter of re.sub's time; only the
    # runs at the ends, which it drops, are put back (a pattern may anchor on them).
    spaced = " ".join(text.split())
    if not spaced:
        spaced = " " if text else ""
    else:
        spaced = (" " if text[0].isspace() else "") + spaced + (" " if text[-1].isspace() else "")
    return spaced.casefold() if fold else spaced


def _is_word_edge(char: str) -> bool:
    """Does a blocked word ending in ``char`` need a boundary there to match whole?"""
    return _WORD_CHAR.match(char) is not None


def _whole_word(word: str) -> str:
    """A regex for ``word`` (normalised, not empty) that does not match inside a longer word.

    A boundary is asked only at an edge that is a word character: ``sk-`` must match in
    ``sk-abc``. The left one is a lookbehind placed after the first character, so the
    alternation of all words starts with literals, which lets ``re`` skip ahead to the
    positions where a word can start (a sixth of the time of a leading lookbehind). Its "."
    is the word's first character, never a line break: normalised words hold none.
    """
    left = "(?<!\\w.)" if _is_word_edge(word[0]) else ""
    right = "(?!\\w)" if _is_word_edge(word[-1]) else ""
    return f"{re.escape(word[0])}{left}{re.escape(word[1:])}{right}"


class BlocklistCheckOutput:
    r"""Blocks a window holding a listed word or matching a listed pattern.

    Words are matched in the window as a reader sees it: both the words and the text are
    normalised (:func:`normalise_blocklist_text`: NFKC, so full-width letters are letters;
    invisible characters such as U+200B or the soft hyphen removed; any run of whitespace as
    one space) and case-folded unless ``case_sensitive``. A word matches whole: a word
    character at its edge must not touch another word character, while a non-word edge
    (``sk-``) matches whatever follows. Patterns are tried on the text as written and on its
    normalised form (not case-folded: ``re.IGNORECASE`` does that), so a pattern that relies
    on line breaks keeps working and one that does not also catches the disguised text. What
    is reported is the match in the text it was found in, e.g. ``strasse`` for ``straße``.

    >>> rail = BlocklistCheckOutput(BlocklistConfig(words=("launch code",)))
    >>> rail.find("the Launch \u200b\n Code")
    'launch code'
    """

    name = "blocklist check output"
    action_name = "blocklist_check_output"

    def __init__(self, config: BlocklistConfig) -> None:
        self._fold = not config.case_sensitive
        words = []
        for word in config.words:
            normal = normalise_blocklist_text(word, fold=self._fold).strip(" ")
            if not normal:
                # The loader refuses blank words; one made only of invisible characters
                # passes it, and would silently never block anything.
                warnings.warn(
                    f"the blocked word {word!r} is empty once invisible characters and "
                    "whitespace are removed, so it can never match; it is ignored",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            words.append(_whole_word(normal))
        self._words = re.compile("|".join(words)) if words else None
        flags = re.IGNORECASE if self._fold else 0
        self._patterns = (
            re.compile("|".join(f"(?:{p})" for p in config.patterns), flags)
            if config.patterns
            else None
        )

    def find(self, text: str) -> str | None:
        """The first blocked word or pattern match in ``text``, if any."""
        normal = normalise_blocklist_text(text, fold=False)
        if self._words is not None:
            match = self._words.search(normal.casefold() if self._fold else normal)
            if match:
                return match.group()
        if self._patterns is not None:
            match = self._patterns.search(text)
            if match is None and normal != text:
                match = self._patterns.search(normal)
            if match:
                return match.group()
        return None

    async def check(self, window: Window, context: RailContext) -> RailResult:
        found = self.find(window.text)
        if found is None:
            return RailResult(allowed=True, return_value=True)
        return RailResult(
            allowed=False, reason=f"matched {found!r}", return_value={"matched": found}
        )
