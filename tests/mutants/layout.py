"""One import name, layers without circles, one error tree (tests/test_layout.py,
tests/test_error_tree.py, tests/test_project.py, tests/test_wheel.py)."""

from tests.mutation_check import Mutation

LAYOUT = "tests/test_layout.py::"
ERRORS = "tests/test_error_tree.py::"
PROJECT = "tests/test_project.py::"

MUTATIONS = [
    Mutation(
        name="layout: a deferred import closes a circle between two files",
        path="stages/_flow.py",
        old="    try:\n        channel.send_nowait(message)\n",
        new="    from .rails import _stage  # noqa: F401\n\n"
        "    try:\n        channel.send_nowait(message)\n",
        tests=(
            LAYOUT + "test_no_import_circle_between_files",
            LAYOUT + "test_no_import_circle_between_packages",
        ),
        expect="railstream.stages._flow",
    ),
    Mutation(
        name="layout: a stage imports the facade above it",
        path="stages/_usage.py",
        old="    def main_usage(self) -> Usage:\n",
        new="    def main_usage(self) -> Usage:\n        from railstream.facade import LLMRails  # noqa: F401\n\n",
        tests=(LAYOUT + "test_each_layer_imports_only_the_layers_below_it",),
        expect="railstream.stages._usage imports railstream.facade",
    ),
    Mutation(
        name="layout: the runtime reaches into a private module of the stages",
        path="engine/runtime/_pipeline.py",
        old="from railstream.stages.generation import ChatProvider, ChatRequest, run_generation\n",
        new="from railstream.stages.generation import ChatProvider, ChatRequest\n"
        "from railstream.stages.generation._stage import run_generation\n",
        tests=(LAYOUT + "test_another_layer_is_imported_only_through_its_public_surface",),
        expect="railstream.runtime._pipeline imports railstream.stages.generation._stage",
    ),
    Mutation(
        name="layout: a package left out of the wheel's list",
        path="pyproject.toml",
        old='    "railstream.runtime",\n',
        new="",
        tests=(LAYOUT + "test_pyproject_lists_every_package_the_folders_hold",),
    ),
    Mutation(
        name="layout: the wheel installs the repo's folder names too",
        path="pyproject.toml",
        old='    "railstream.stages.rails",\n]\n',
        new='    "railstream.stages.rails",\n    "config_schema",\n]\n',
        tests=("tests/test_wheel.py::test_the_wheel_installs_one_top_level_import_name",),
        expect="config_schema",
    ),
    Mutation(
        name="errors: a stream's state error outside the tree",
        path="stages/_errors.py",
        old="class StreamStateError(RailstreamError):",
        new="class StreamStateError(Exception):",
        tests=(ERRORS + "test_every_exception_railstream_defines_is_a_railstream_error",),
        expect="StreamStateError",
    ),
    Mutation(
        name="public path: objects show their private module",
        path="engine/__init__.py",
        old="            obj.__module__ = public\n",
        new="            pass\n",
        tests=(PROJECT + "test_public_objects_show_the_path_users_import_them_by",),
    ),
    Mutation(
        name="public path: renamed before cattrs has read its annotations",
        path="engine/__init__.py",
        old="                    attrs.resolve_types(obj)\n",
        new="                    pass\n",
        tests=(PROJECT + "test_a_config_still_loads_after_its_classes_were_renamed",),
        expect="NameError",
    ),
]
