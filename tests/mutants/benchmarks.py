"""The benchmark report's figures (tests/test_benchmark_report.py)."""

from tests.mutation_check import Mutation

MUTATIONS = [
    Mutation(
        name="benchmarks: a concurrency target is the ratio of the rounds' medians",
        path="benchmarks/__main__.py",
        old='            x = (get(scenario, rs, "x_floor") or {}).get(key, x)\n',
        new="            x = x\n",
        tests=(
            "tests/test_benchmark_report.py::test_a_concurrency_target_is_the_median_of_each_rounds_own_ratio_to_the_floor",
        ),
    ),
    Mutation(
        name="benchmarks: a round's ratio is against another round's floor",
        path="benchmarks/__main__.py",
        old='        paired = [(g, floors.get((scenario, g["round"]))) for g in group]\n',
        new="        paired = [(g, floors.get((scenario, 0))) for g in group]\n",
        tests=(
            "tests/test_benchmark_report.py::test_a_concurrency_target_is_the_median_of_each_rounds_own_ratio_to_the_floor",
        ),
    ),
]
