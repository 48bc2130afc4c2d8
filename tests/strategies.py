"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st


@st.composite
def geometry(draw: st.DrawFn, max_chunk: int = 12) -> tuple[int, int]:
    """(chunk_size, context_size) with chunk_size >= 1 and 0 <= context_size < chunk_size."""
    chunk = draw(st.integers(min_value=1, max_value=max_chunk))
    context = draw(st.integers(min_value=0, max_value=chunk - 1))
    return chunk, context


def distinct_tokens(min_size: int = 0, max_size: int = 60) -> st.SearchStrategy[list[str]]:
    """Tokens that are each unique (t0, t1, ...), so a released text tells which were released."""
    return st.integers(min_value=min_size, max_value=max_size).map(
        lambda n: [f"t{i} " for i in range(n)]
    )


@st.composite
def batches(draw: st.DrawFn, tokens: list[str]) -> list[list[str]]:
    """``tokens`` split into consecutive batches, as a provider's reads might deliver them."""
    out: list[list[str]] = []
    i = 0
    while i < len(tokens):
        size = draw(st.integers(min_value=1, max_value=max(1, len(tokens) - i)))
        out.append(tokens[i : i + size])
        i += size
    return out


# What the blocklist must see through: invisible characters (a sample of Unicode's
# default-ignorables), and whitespace that NFKC or collapsing makes one plain space.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\U000e0041"
WHITESPACE = " \n\t\r\u00a0\u3000"


def _full_width(char: str) -> str:
    # The full-width forms U+FF01..U+FF5E mirror ASCII ! .. ~; NFKC maps them back.
    return chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char


@st.composite
def disguised(draw: st.DrawFn, word: str) -> str:
    """``word`` as written to slip past a naive filter: each character maybe upper-case or
    full-width, invisible characters anywhere, and a run of any whitespace for each space."""
    out = [draw(st.text(INVISIBLE, max_size=2))]
    for char in word:
        if char == " ":
            out.append(draw(st.text(WHITESPACE, min_size=1, max_size=3)))
        else:
            out.append(draw(st.sampled_from([char, char.upper(), _full_width(char)])))
        out.append(draw(st.text(INVISIBLE, max_size=2)))
    return "".join(out)


@st.composite
def split_into_tokens(draw: st.DrawFn, text: str, max_tokens: int) -> list[str]:
    """``text`` cut anywhere into between 1 and ``max_tokens`` non-empty tokens."""
    count = draw(st.integers(1, max(1, min(max_tokens, len(text)))))
    if count == 1:
        return [text]
    cuts = draw(
        st.lists(st.integers(1, len(text) - 1), min_size=count - 1, max_size=count - 1, unique=True)
    )
    return [text[a:b] for a, b in itertools.pairwise([0, *sorted(cuts), len(text)])]
