"""Code versions: Hamilton's node version, parsed once per file content and cached on disk."""

from hamilton.graph_types import hash_source_code

from orchestration import code_versions
from orchestration.code_versions import code_version


def test_code_version_is_exactly_hamiltons_node_version(make_module):
    flow = make_module('''
import functools
from hamilton.function_modifiers import config, tag


@tag(owner="x")
@config.when(mode="a")
def decorated__a(x: int) -> int:
    """Doc."""
    # a comment
    return x


def nested(x: int) -> int:
    def helper(y):
        """Inner doc, also ignored by Hamilton."""
        return y + 1
    return helper(x)


def only_doc(x: int) -> int:
    """Only a docstring and a return."""
    return x
''')
    for fn in (flow.decorated__a, flow.nested, flow.only_doc):
        assert code_version(fn) == hash_source_code(fn, strip=True)


def test_a_file_is_parsed_once_then_read_from_the_cache(make_module, data_dir, monkeypatch):
    flow = make_module("def a(x: int) -> int:\n    return x + 1\n")
    first = code_version(flow.a)
    [cached] = (data_dir / "cache" / "code_versions").iterdir()

    parses = []
    monkeypatch.setattr(code_versions, "_parse", lambda source: parses.append(source) or {})
    code_versions._versions.cache_clear()  # as in a new process
    assert code_version(flow.a) == first and parses == []

    cached.write_text("not json")  # a damaged entry is recomputed, never trusted
    code_versions._versions.cache_clear()
    monkeypatch.undo()
    assert code_version(flow.a) == first


def test_an_edited_file_gets_new_versions(make_module, data_dir):
    name = "edited_flow"
    before = code_version(make_module("def a(x: int) -> int:\n    return x + 1\n", name=name).a)
    after = code_version(make_module("def a(x: int) -> int:\n    return x + 20\n", name=name).a)
    assert before != after
    assert after == hash_source_code(make_module("def a(x: int) -> int:\n    return x + 20\n").a, strip=True)


def test_nested_functions_and_any_line_endings_match_hamiltons_version(make_module, data_dir):
    source = (
        'def outer(\n    x: int,\n) -> int:\n    """Outer doc."""\n'
        '    async def inner(y):\n        """Inner doc."""\n        return y\n'
        '    class Helper:\n        def method(self):\n            """Method doc."""\n            return 1\n'
        "    return x\n\n\n"
        'def no_nested(default: int = 1) -> int:\n    """Says def, nests none."""\n    return default\n'
    )
    for newline in ("\n", "\r\n"):
        flow = make_module(source.replace("\n", newline))
        for fn in (flow.outer, flow.no_nested):
            assert code_version(fn) == hash_source_code(fn, strip=True), (repr(newline), fn.__name__)


def test_parsing_pauses_the_collector_and_leaves_it_as_it_was(make_module, data_dir, monkeypatch):
    import ast
    import gc
    import types

    states = []
    recording_ast = types.SimpleNamespace(**vars(ast))
    recording_ast.parse = lambda source: states.append(gc.isenabled()) or ast.parse(source)
    monkeypatch.setattr(code_versions, "ast", recording_ast)
    code_version(make_module("def a(x: int) -> int:\n    return x\n").a)
    assert states == [False] and gc.isenabled()

    gc.disable()  # a caller's own pause is kept
    try:
        code_version(make_module("def b(x: int) -> int:\n    return x\n").b)
        assert not gc.isenabled()
    finally:
        gc.enable()
