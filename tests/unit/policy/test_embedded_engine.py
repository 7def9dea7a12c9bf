"""The embedded OPA engine: the real OPA evaluates, fails loudly, and never hangs a caller."""
from __future__ import annotations

import importlib
import threading
import time

import pytest

import securekube.policy.embedded as embedded
from securekube.policy.embedded import BINDING_MODULE, EmbeddedEngineConfig, EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError, PolicyError, PolicyTimeout

GREETING = """package demo

greeting := sprintf("hello %s", [input.name])

deny contains "no bob" if input.name == "bob"
"""

# Counting multiples of 7 up to input.n: about 5 µs per number on the machines this was
# measured on, so n = 150000 takes well over the short timeouts below and under a second.
SLOW = """package slow

count_sevens := count([x | some x in numbers.range(1, input.n); x % 7 == 0])
"""
SLOW_INPUT = {"n": 150_000}


def test_evaluates_a_loaded_policy_with_its_input(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    assert engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=1) == ({"x": "hello ada"},)
    assert engine.evaluate("d := data.demo.deny", {"name": "bob"}, timeout=1) == ({"d": ["no bob"]},)


def test_an_undefined_query_has_no_result(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    assert engine.evaluate("x := data.demo.greeting", {}, timeout=1) == ()
    assert engine.evaluate("x := data.demo.nothing", {"name": "ada"}, timeout=1) == ()


def test_load_replaces_every_module(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    engine.load({"other.rego": "package other\n\nvalue := 1\n"})
    assert engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=1) == ()
    assert engine.evaluate("x := data.other.value", timeout=1) == ({"x": 1},)


def test_a_syntax_error_names_the_file_and_line_and_keeps_the_old_modules(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    broken = "package broken\n\nallow if {\n\tinput.a ==\n}\n"
    with pytest.raises(PolicyCompileError, match=r"policies/broken/policy\.rego:5: rego_parse_error"):
        engine.load({"demo.rego": GREETING, "policies/broken/policy.rego": broken})
    assert engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=1) == ({"x": "hello ada"},)


def test_a_compile_error_is_found_at_load_not_at_the_first_request(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    undefined_function = "package typo\n\nallow if {\n\tcountt(input.items) > 1\n}\n"
    with pytest.raises(PolicyCompileError, match=r"typo\.rego:4: rego_type_error: undefined function countt"):
        engine.load({"typo.rego": undefined_function})
    assert engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=1) == ({"x": "hello ada"},)


def test_pre_v1_rego_is_refused(engine: EmbeddedOpaEngine) -> None:
    with pytest.raises(PolicyCompileError, match=r"old\.rego:3: rego_parse_error: `if` keyword is required"):
        engine.load({"old.rego": 'package old\n\ndeny[msg] { msg := "x" }\n'})


def test_an_evaluation_error_is_a_policy_error(engine: EmbeddedOpaEngine) -> None:
    engine.load({"c.rego": "package c\n\nv := input.a\n\nv := input.b\n"})
    with pytest.raises(PolicyError, match=r"c\.rego:3: eval_conflict_error"):
        engine.evaluate("x := data.c.v", {"a": 1, "b": 2}, timeout=1)
    with pytest.raises(PolicyError, match="divide by zero"):
        engine.evaluate("x := 1 / input.zero", {"zero": 0}, timeout=1)


def test_a_slow_evaluation_times_out_and_the_engine_keeps_answering(engine: EmbeddedOpaEngine) -> None:
    engine.load({"slow.rego": SLOW, "demo.rego": GREETING})
    started = time.monotonic()
    with pytest.raises(PolicyTimeout, match="did not finish within 0.02s"):
        engine.evaluate("x := data.slow.count_sevens", SLOW_INPUT, timeout=0.02)
    assert time.monotonic() - started < 0.5  # the caller is not held until the evaluation ends
    assert engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=1) == ({"x": "hello ada"},)


def test_runaway_evaluations_cannot_take_more_than_the_pool(opa_available: None) -> None:
    with EmbeddedOpaEngine(EmbeddedEngineConfig(max_concurrent_evaluations=1)) as engine:
        engine.load({"slow.rego": SLOW, "demo.rego": GREETING})
        with pytest.raises(PolicyTimeout):
            engine.evaluate("x := data.slow.count_sevens", SLOW_INPUT, timeout=0.02)
        # The abandoned evaluation still holds the only slot: the next caller fails closed in time.
        with pytest.raises(PolicyTimeout, match="no policy engine became free within 0.05s"):
            engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=0.05)
        # Once it has run to its end the slot is back.
        assert engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=10) == ({"x": "hello ada"},)


def test_concurrent_evaluations_each_get_their_own_answer(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    wrong: list[tuple[str, object]] = []

    def ask(thread: int) -> None:
        for i in range(40):
            name = f"user-{thread}-{i}"
            answer = engine.evaluate("x := data.demo.greeting", {"name": name}, timeout=5)
            if answer != ({"x": f"hello {name}"},):
                wrong.append((name, answer))

    threads = [threading.Thread(target=ask, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_set_data_replaces_the_data_document(engine: EmbeddedOpaEngine) -> None:
    engine.load({"d.rego": "package d\n\nadmins := data.config.admins\n"})
    engine.set_data({"config": {"admins": ["ada"]}})
    assert engine.evaluate("x := data.d.admins", timeout=1) == ({"x": ["ada"]},)
    engine.set_data({"config": {"admins": ["grace"]}})
    assert engine.evaluate("x := data.d.admins", timeout=1) == ({"x": ["grace"]},)


def test_data_that_conflicts_with_a_rule_is_refused(engine: EmbeddedOpaEngine) -> None:
    engine.load({"d.rego": "package d\n\nadmins := 1\n"})
    with pytest.raises(PolicyCompileError, match="conflicting rule for data path d/admins"):
        engine.set_data({"d": {"admins": 2}})
    assert engine.evaluate("x := data.d.admins", timeout=1) == ({"x": 1},)


def test_an_input_that_is_not_json_is_refused(engine: EmbeddedOpaEngine) -> None:
    engine.load({"demo.rego": GREETING})
    with pytest.raises(PolicyError, match="input document is not JSON"):
        engine.evaluate("x := data.demo.greeting", {"name": object()}, timeout=1)


# Values whose JSON text is easy to get subtly wrong on the way from Python to Go and back.
AWKWARD_INPUT = {"name": "zoë ✓ 🚀", "quoted": 'say "hi"\n\t\\', "nul": "a\x00b", "big": 2**63 + 1, "float": 0.1,
                 "huge": 1e300, "none": None, "flags": [True, False], "nested": {"list": [1, [2, {"three": 3}]]},
                 "empty": {}, "empty_list": []}
ECHO = "package echo\n\ninput_copy := input\n"


def test_the_input_reaches_the_policies_exactly_as_given(engine: EmbeddedOpaEngine) -> None:
    engine.load({"echo.rego": ECHO})
    assert engine.evaluate("x := data.echo.input_copy", AWKWARD_INPUT, timeout=1) == ({"x": AWKWARD_INPUT},)
    assert engine.evaluate("x := data.echo.input_copy", {}, timeout=1) == ({"x": {}},)
    assert engine.evaluate("x := data.echo.input_copy", timeout=1) == ()  # no input: `input` is undefined


def test_answers_agree_with_the_bindings_own_eval_query(engine: EmbeddedOpaEngine) -> None:
    # The engine hands the caller's JSON text to the binding's native call (one conversion
    # instead of three); its answers must be exactly what the binding's public API gives.
    binding = importlib.import_module(BINDING_MODULE).OpaEngine()
    try:
        binding.add_policy("demo.rego", GREETING)
        binding.add_policy("echo.rego", ECHO)
        engine.load({"demo.rego": GREETING, "echo.rego": ECHO})
        for query, input_doc in [("x := data.echo.input_copy", AWKWARD_INPUT), ("d := data.demo.deny", {"name": "bob"}),
                                 ("x := data.demo.greeting", {}), ("x := 1", None), ("some x in [1, 2]", None)]:
            assert engine.evaluate(query, input_doc, timeout=1) == tuple(binding.eval_query(query, input_doc))
    finally:
        binding.close()


def test_the_pinned_binding_still_takes_input_as_json_text(opa_available: None) -> None:
    # An upgrade of opa-golib-python-bindings that changes the internals the single-conversion
    # path uses must fail here, not make every evaluation quietly slower.
    binding = importlib.import_module(BINDING_MODULE).OpaEngine()
    try:
        assert embedded._takes_json_input(binding)
    finally:
        binding.close()


def test_a_binding_without_those_internals_gives_the_same_answers(
        opa_available: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_takes_json_input", lambda engine: False)
    with EmbeddedOpaEngine() as engine:
        engine.load({"demo.rego": GREETING, "echo.rego": ECHO})
        assert engine.evaluate("x := data.echo.input_copy", AWKWARD_INPUT, timeout=1) == ({"x": AWKWARD_INPUT},)
        assert engine.evaluate("d := data.demo.deny", {"name": "bob"}, timeout=1) == ({"d": ["no bob"]},)


def test_an_input_with_a_lone_surrogate_is_refused_without_quoting_it(engine: EmbeddedOpaEngine) -> None:
    # Go would silently turn it into U+FFFD, so OPA would judge a different string.
    engine.load({"echo.rego": ECHO})
    with pytest.raises(PolicyError, match="input document is not JSON") as refused:
        engine.evaluate("x := data.echo.input_copy", {"name": "s3cr3t\ud800"}, timeout=1)
    assert "s3cr3t" not in str(refused.value) and "\\ud800" not in str(refused.value)


def test_a_query_with_a_nul_character_is_refused(engine: EmbeddedOpaEngine) -> None:
    # A C string ends at the first NUL: "x := 1\0; y := 2" must not quietly become "x := 1".
    with pytest.raises(PolicyError, match="NUL"):
        engine.evaluate("x := 1\x00; y := 2", timeout=1)


def test_print_output_never_reaches_stderr(engine: EmbeddedOpaEngine, capfd: pytest.CaptureFixture[str]) -> None:
    engine.load({"p.rego": 'package p\n\nv if {\n\tprint("token", input.token)\n}\n'})
    assert engine.evaluate("x := data.p.v", {"token": "s3cr3t-value"}, timeout=1) == ({"x": True},)
    out, err = capfd.readouterr()
    assert "s3cr3t-value" not in out + err


def test_a_closed_engine_refuses_to_evaluate(opa_available: None) -> None:
    engine = EmbeddedOpaEngine()
    engine.load({"demo.rego": GREETING})
    engine.close()
    with pytest.raises(PolicyError, match="closed"):
        engine.evaluate("x := data.demo.greeting", {"name": "ada"}, timeout=1)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan")])
def test_the_timeout_must_be_a_positive_number(engine: EmbeddedOpaEngine, timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        engine.evaluate("x := 1", timeout=timeout)
