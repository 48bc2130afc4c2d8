"""A window's one text and its token offsets (tests/test_buffering.py)."""

from tests.mutation_check import Mutation

BUFFERING = "tests/test_buffering.py"
TEXT = f"{BUFFERING}::test_a_windows_text_is_its_tokens_joined_and_each_token_is_its_own_slice"
GEOMETRY = f"{BUFFERING}::test_window_geometry_is_exact_whatever_the_batching"

MUTATIONS = [
    Mutation(
        name="windows: a push split over two windows keeps the caller's whole text for each part",
        path="stages/_buffering.py",
        old="                part = tokens[taken : taken + room]\n                text = None\n",
        new="                part = tokens[taken : taken + room]\n",
        tests=(TEXT,),
        expect="assert window.text ==",
    ),
    Mutation(
        name="windows: the next window's context starts a token late",
        path="stages/_buffering.py",
        old="kept_from = ends[len(ends) - keep - 1] if len(ends) > keep else 0",
        new="kept_from = ends[len(ends) - keep] if len(ends) > keep else 0",
        tests=(GEOMETRY, TEXT),
    ),
    Mutation(
        name="windows: a token's end counted from the window's start, not the tokens before it",
        path="stages/_buffering.py",
        old="            base = ends[-1] if ends else 0\n",
        new="            base = 0\n",
        tests=(GEOMETRY, TEXT),
    ),
    Mutation(
        name="windows: the text between two positions starts at the token after the first",
        path="stages/_messages.py",
        old="        return self.ends[i - 1] if i > 0 else 0\n",
        new="        return self.ends[i] if i < len(self.ends) else len(self.text)\n",
        tests=(
            TEXT,
            "tests/test_pipeline_properties.py::test_released_chunks_concatenate_to_the_generated_text_each_token_once",
        ),
    ),
]
