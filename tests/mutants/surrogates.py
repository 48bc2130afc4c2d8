"""A character split into UTF-16 surrogates over two deltas (tests/test_openai_provider.py)."""

from tests.mutation_check import Mutation

T = (
    "tests/test_openai_provider.py::"
    "test_a_character_split_into_surrogates_over_two_deltas_arrives_whole"
)

MUTATIONS = [
    Mutation(
        name="surrogates: a high surrogate ending a delta is passed on alone",
        path="stages/generation/_openai.py",
        old='                        if "\\ud800" <= content[-1] <= "\\udbff":\n',
        new="                        if False:\n",
        tests=(T + "[alone]",),
    ),
    Mutation(
        name="surrogates: half a character at the end of the reply is dropped",
        path="stages/generation/_openai.py",
        old="                tokens.append(_joined_surrogates(held))  # half a character: U+FFFD\n",
        new="                pass\n",
        tests=(T + "[half-at-the-end]",),
    ),
]
