"""The blocklist's promises: it matches the text a reader sees, whole words only where a word
edge is a word character, and a disguised word cut across tokens is caught by its window."""

from __future__ import annotations

from tests.mutation_check import Mutation

_RAIL = "stages/rails/_blocklist.py"
_MATCHING = "tests/test_builtin_rails.py::test_blocklist_matching"
_PROPERTY = (
    "tests/test_builtin_rails.py::"
    "test_a_disguised_blocked_word_cut_into_tokens_anyhow_is_caught_by_exactly_the_windows_holding_it"
)
_NORMALISED = (
    "tests/test_builtin_rails.py::test_normalised_text_has_one_space_for_each_whitespace_run"
)
_WARNS = "tests/test_builtin_rails.py::test_a_word_that_normalises_to_nothing_warns_and_is_ignored"

MUTATIONS = [
    Mutation(
        name="blocklist: NFKC dropped (full-width letters get through)",
        path=_RAIL,
        old='text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))',
        new='text = _INVISIBLE.sub("", text)',
        tests=(_MATCHING, _PROPERTY),
    ),
    Mutation(
        name="blocklist: invisible characters kept (zero-width and soft hyphens get through)",
        path=_RAIL,
        old='text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))',
        new='text = unicodedata.normalize("NFKC", text)',
        tests=(_MATCHING, _PROPERTY),
    ),
    Mutation(
        # Splitting on single spaces and joining them again gives the text back unchanged.
        name="blocklist: whitespace runs not collapsed (doubled spaces, newlines get through)",
        path=_RAIL,
        old='spaced = " ".join(text.split())',
        new='spaced = " ".join(text.split(" "))',
        tests=(_MATCHING, _PROPERTY),
    ),
    Mutation(
        # A combining grapheme joiner between "e" and U+0301 keeps them from composing to é.
        name="blocklist: invisible characters removed after NFKC (what they kept apart stays apart)",
        path=_RAIL,
        old='text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))',
        new='text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))',
        tests=(_NORMALISED,),
    ),
    Mutation(
        name="blocklist: whitespace runs at the ends of a window dropped",
        path=_RAIL,
        old='spaced = (" " if text[0].isspace() else "") + spaced + (" " if text[-1].isspace() else "")',
        new="pass",
        tests=(_NORMALISED,),
    ),
    Mutation(
        name="blocklist: a non-word edge asks for a boundary again (sk- never matches)",
        path=_RAIL,
        old="return _WORD_CHAR.match(char) is not None",
        new="return True",
        tests=(_MATCHING, _PROPERTY),
    ),
    Mutation(
        name="blocklist: no boundary before a word (secret matches in topsecret)",
        path=_RAIL,
        old='left = "(?<!\\\\w.)" if _is_word_edge(word[0]) else ""',
        new='left = ""',
        tests=(_MATCHING,),
    ),
    Mutation(
        name="blocklist: listed words not normalised (a full-width or zero-width word never matches)",
        path=_RAIL,
        old='normal = normalise_blocklist_text(word, fold=self._fold).strip(" ")',
        new='normal = (word.casefold() if self._fold else word).strip(" ")',
        tests=(_MATCHING,),
    ),
    Mutation(
        name="blocklist: a word empty once normalised passes without a warning",
        path=_RAIL,
        old="                warnings.warn(",
        new="                (lambda *a, **k: None)(",
        tests=(_WARNS,),
    ),
    Mutation(
        name="blocklist: patterns not tried on the normalised text",
        path=_RAIL,
        old="if match is None and normal != text:",
        new="if False:",
        tests=(_MATCHING,),
    ),
    Mutation(
        name="blocklist: patterns not tried on the text as written",
        path=_RAIL,
        old="match = self._patterns.search(text)",
        new="match = None",
        tests=(_MATCHING,),
    ),
    Mutation(
        # An empty alternative would match everywhere; here _whole_word("") fails at once.
        name="blocklist: a word empty once normalised is compiled anyway",
        path=_RAIL,
        old="                continue\n",
        new="",
        tests=(_WARNS,),
    ),
    Mutation(
        name="blocklist: the loader accepts a blank word",
        path="config_schema/_checks.py",
        old="        if not word.strip():",
        new="        if False:",
        tests=("tests/test_builtin_rails.py::test_a_blank_word_is_still_a_config_error",),
    ),
]
