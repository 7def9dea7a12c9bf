"""Which queries the remote engine reads through OPA's Data API (strict built-in errors), and at which path."""
from __future__ import annotations

import pytest

from securekube.policy.data_refs import data_ref_of, ref_query


@pytest.mark.parametrize("query, var, url_path", [
    ("result := data.securekube.internal.admission.validation", "result",
     "securekube/internal/admission/validation"),
    ('result := data["securekube"]["authz"]["no-bob"]["deny"]', "result", "securekube/authz/no-bob/deny"),
    ('  x:=data.a["b/c"]["d e"]  ', "x", "a/b%2Fc/d%20e"),
])
def test_a_query_binding_one_data_reference_is_read_at_its_path(query: str, var: str, url_path: str) -> None:
    ref = data_ref_of(query)
    assert ref is not None and (ref.var, ref.url_path) == (var, url_path)
    assert data_ref_of(ref_query(ref.var, ref.segments)) == ref


@pytest.mark.parametrize("query", [
    "module := rego.parse_module(input.name, input.source)",
    'result := {name: data.a[pkg].deny | some name, pkg in {"x": "y"}}',
    "x := data.a; y := 1",
    "x := data.a[0]",
    'x := data.a["0"]',  # OPA would read it as an array index
    'x := data.a[""]',
    "_ := data.a",
    "x := data",
    "x = data.a",
])
def test_any_other_query_is_not(query: str) -> None:
    assert data_ref_of(query) is None
