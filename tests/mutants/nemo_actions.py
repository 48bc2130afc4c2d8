"""An actions.py written for NeMo loads unchanged (tests/test_nemo_actions.py, issue 14)."""

from tests.mutation_check import Mutation

T = "tests/test_nemo_actions.py::"
LOADS = T + "test_nemos_actions_py_loads_unchanged_and_its_rails_run"
MAPPING = T + "test_an_output_mapping_decides_the_verdict_from_the_actions_value"

MUTATIONS = [
    Mutation(
        name="nemo actions: NeMo's import is not answered",
        path="config_schema/_nemo_imports.py",
        old="    if _nemo_installed():\n",
        new="    if True:\n",
        tests=(LOADS,),
        expect="imports nemoguardrails",
    ),
    Mutation(
        name="nemo actions: the stand-in outlives the import of actions.py",
        path="config_schema/_nemo_imports.py",
        old="            if sys.modules.get(name) is module:\n",
        new="            if False:\n",
        tests=(T + "test_the_nemo_stand_in_lives_only_while_actions_py_is_imported",),
    ),
    Mutation(
        name="nemo actions: output_mapping ignored",
        path="stages/rails/_actions.py",
        old="    if output_mapping is not None:\n",
        new="    if False:\n",
        tests=(LOADS, MAPPING),
    ),
    Mutation(
        name="nemo actions: an output_mapping's non-bool answer is taken as truthy",
        path="stages/rails/_actions.py",
        old='        if not isinstance(blocked, bool):\n            raise RailResultError(\n                f"output_mapping',
        new='        if False:\n            raise RailResultError(\n                f"output_mapping',
        tests=(T + "test_an_output_mapping_that_answers_no_bool_fails_closed",),
    ),
    Mutation(
        name="nemo actions: @action drops output_mapping",
        path="config_schema/_action_marks.py",
        old="        setattr(fn, ACTION_OUTPUT_MAPPING_ATTR, output_mapping)\n",
        new="",
        tests=(MAPPING,),
    ),
    Mutation(
        name="nemo actions: NeMo's action_meta name not read",
        path="config_schema/_action_marks.py",
        old='    name = _nemo_meta(fn).get("name")\n',
        new="    name = None\n",
        tests=(T + "test_an_action_marked_by_nemos_own_decorator_is_registered_with_its_mapping",),
    ),
    Mutation(
        name="nemo actions: NeMo's action_meta output_mapping not read",
        path="config_schema/_action_marks.py",
        old='    mapping = getattr(fn, ACTION_OUTPUT_MAPPING_ATTR, None) or _nemo_meta(fn).get("output_mapping")\n',
        new="    mapping = getattr(fn, ACTION_OUTPUT_MAPPING_ATTR, None)\n",
        tests=(T + "test_an_action_marked_by_nemos_own_decorator_is_registered_with_its_mapping",),
    ),
    Mutation(
        name="nemo actions: a positional is_system_action is taken for a name",
        path="config_schema/_action_marks.py",
        old="    if name is not None and not isinstance(name, str):\n",
        new="    if False:\n",
        tests=(T + "test_nemos_positional_is_system_action_is_refused_saying_to_use_the_keyword",),
    ),
    Mutation(
        name="nemo actions: an import railstream lacks fails without saying so",
        path="config_schema/_actions.py",
        old="        if isinstance(exc, ImportError) and is_unprovided_nemo_import(exc):\n",
        new="        if False:\n",
        tests=(T + "test_an_import_of_nemo_railstream_lacks_fails_with_one_line",),
    ),
]
