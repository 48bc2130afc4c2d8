"""Message content as OpenAI's content parts (tests/test_content_parts.py)."""

from tests.mutation_check import Mutation

T = "tests/test_content_parts.py::"

MUTATIONS = [
    Mutation(
        name="content parts: the rails read none of a message's text parts",
        path="stages/_content.py",
        old='if isinstance(part, Mapping) and part.get("type") == "text"',
        new='if isinstance(part, Mapping) and part.get("type") == "txt"',
        tests=(T + "test_the_rails_read_the_text_parts_joined_and_the_model_gets_the_parts",),
        expect="assert [''] ==",
    ),
    Mutation(
        name="content parts: the rails read each part apart, a word split over two passes",
        path="stages/_content.py",
        old='        return "".join(\n',
        new='        return "\\n".join(\n',
        tests=(T + "test_the_openai_client_sends_parts_through_the_server",),
    ),
    Mutation(
        name="content parts: an image the input rails cannot read goes through unchecked",
        path="engine/facade/_request.py",
        old="    if not input_flows:\n        return\n",
        new="    if input_flows or not input_flows:\n        return\n",
        tests=(T + "test_an_image_the_input_rails_cannot_read_is_refused",),
        expect="DID NOT RAISE",
    ),
    Mutation(
        name="content parts: a list of parts refused as not a string",
        path="engine/facade/_request.py",
        old="        if isinstance(content, list):\n",
        new="        if isinstance(content, list) and False:\n",
        tests=(T + "test_an_image_goes_to_the_model_where_no_input_rail_must_read_it",),
    ),
]
