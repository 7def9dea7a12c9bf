"""The embedded OPA engine: the real OPA evaluates, fails loudly, and never hangs a caller."""
from __future__ import annotations

import threading
import time

import pytest

from securekube.policy.embedded import EmbeddedEngineConfig, EmbeddedOpaEngine
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
