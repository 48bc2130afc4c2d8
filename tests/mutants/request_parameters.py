"""The operator's request_parameters policy (tests/test_request_parameters.py)."""

from tests.mutation_check import Mutation

TESTS = "tests/test_request_parameters.py"

MUTATIONS = [
    Mutation(
        name="a request may set a parameter the config pins",
        path="engine/runtime/_plan.py",
        old="            if policy.allow is not None and name not in policy.allow:\n",
        new="            if False:\n",
        tests=(TESTS,),
    ),
    Mutation(
        name="a request may exceed the config's cap",
        path="engine/runtime/_plan.py",
        old="            if value > bound:\n",
        new="            if False:\n",
        tests=(TESTS,),
    ),
]
