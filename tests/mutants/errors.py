"""Errors reach callers as what they are (tests/test_error_tree.py)."""

from tests.mutation_check import Mutation

MUTATIONS = [
    Mutation(
        name="generate_async flattens provider errors to GenerationError",
        path="engine/facade/_llmrails.py",
        old="        if isinstance(final.cause, GenerationError):\n",
        new="        if False:\n",
        tests=("tests/test_error_tree.py",),
    ),
    Mutation(
        name="the generation stage drops the provider's exception",
        path="stages/generation/_stage.py",
        old='            status, final = "failed", GenerationFailed(exc.payload, cause=exc)\n',
        new='            status, final = "failed", GenerationFailed(exc.payload)\n',
        tests=("tests/test_error_tree.py",),
    ),
]
