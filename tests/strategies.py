"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

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
