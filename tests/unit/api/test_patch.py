"""The three PATCH formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from securekube.api.errors import ApiError
from securekube.api.patch import json_merge_patch, json_patch, strategic_merge_patch

# -- RFC 7386, Appendix A ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "patch", "result"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_json_merge_patch_rfc7386_appendix_a(original: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(original)
    assert json_merge_patch(original, patch) == result
    assert original == before


def test_json_merge_patch_result_shares_nothing_with_its_inputs() -> None:
    original = {"a": {"b": [1]}}
    patch = {"c": {"d": [2]}}
    out = json_merge_patch(original, patch)
    out["a"]["b"].append(9)
    out["c"]["d"].append(9)
    assert original == {"a": {"b": [1]}}
    assert patch == {"c": {"d": [2]}}


# -- RFC 6902, Appendix A ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "operations", "result"),
    [
        # A.1 adding an object member
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
        # A.2 adding an array element
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
        # A.3 removing an object member
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        # A.4 removing an array element
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        # A.5 replacing a value
        ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
        # A.6 moving a value
        ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
         [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
         {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        # A.7 moving an array element
        ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
         {"foo": ["all", "cows", "eat", "grass"]}),
        # A.8 testing a value: success
        ({"baz": "qux", "foo": ["a", 2, "c"]},
         [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
         {"baz": "qux", "foo": ["a", 2, "c"]}),
        # A.10 adding a nested member object
        ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
         {"foo": "bar", "child": {"grandchild": {}}}),
        # A.11 ignoring unrecognized elements
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
        # A.14 ~ escape ordering
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        # A.16 adding an array value
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
        # copy, and "-" appends
        ({"a": {"x": 1}}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": {"x": 1}, "b": {"x": 1}}),
        # "/" in a key is "~1"
        ({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}},
         [{"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1name"}], {"metadata": {"labels": {}}}),
        # numbers compare by value: 1 and 1.0 are the same JSON number
        ({"n": 1}, [{"op": "test", "path": "/n", "value": 1.0}], {"n": 1}),
    ],
)
def test_json_patch_rfc6902_appendix_a(document: Any, operations: list, result: Any) -> None:
    before = copy.deepcopy(document)
    assert json_patch(document, operations) == result
    assert document == before


@pytest.mark.parametrize(
    ("document", "operations"),
    [
        # A.9 testing a value: error
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
        # A.12 adding to a nonexistent target
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
        # A.15 comparing strings and numbers
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
        # JSON true is not the number 1, nor false 0 (Python's == says otherwise)
        ({"flag": True}, [{"op": "test", "path": "/flag", "value": 1}]),
        ({"list": [0]}, [{"op": "test", "path": "/list", "value": [False]}]),
        ({"foo": "bar"}, [{"op": "remove", "path": "/missing"}]),
        ({"foo": "bar"}, [{"op": "replace", "path": "/missing", "value": 1}]),
        ({"foo": [1]}, [{"op": "remove", "path": "/foo/1"}]),
        ({"foo": [1]}, [{"op": "add", "path": "/foo/2", "value": 1}]),
        ({"foo": [1]}, [{"op": "replace", "path": "/foo/-", "value": 1}]),
        ({"foo": [1, 2, 3]}, [{"op": "remove", "path": "/foo/\u00b2"}]),  # a superscript two is not an index
        ({"foo": "bar"}, [{"op": "move", "from": "/nope", "path": "/x"}]),
    ],
)
def test_json_patch_failures_are_422_and_leave_the_input_untouched(document: Any, operations: list) -> None:
    before = copy.deepcopy(document)
    with pytest.raises(ApiError) as info:
        json_patch(document, operations)
    assert info.value.code == 422
    assert info.value.reason == "Invalid"
    assert document == before


def test_a_json_patch_that_fails_half_way_applies_nothing() -> None:
    document = {"metadata": {"labels": {"a": "1"}}}
    operations = [
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "test", "path": "/metadata/labels/b", "value": "3"},
    ]
    with pytest.raises(ApiError):
        json_patch(document, operations)
    assert document == {"metadata": {"labels": {"a": "1"}}}


@pytest.mark.parametrize(
    "operations",
    [
        {"op": "add", "path": "/a", "value": 1},  # not a list
        [{"path": "/a", "value": 1}],  # no op
        [{"op": "add", "value": 1}],  # no path
        [{"op": "add", "path": "/a"}],  # no value
        [{"op": "test", "path": "/a"}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "a", "value": 1}],  # a pointer starts with "/"
        [{"op": "add", "path": 7, "value": 1}],
        [{"op": "move", "path": "/b"}],  # no from
        [{"op": "copy", "path": "/b"}],
        ["not an operation"],
    ],
)
def test_malformed_json_patches_are_400(operations: Any) -> None:
    with pytest.raises(ApiError) as info:
        json_patch({"a": 0}, operations)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"


# -- strategic merge patch --------------------------------------------------------------------


def pod(*containers: dict, **spec: Any) -> dict:
    return {"metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {"containers": list(containers), **spec}}


def test_containers_are_merged_by_name() -> None:
    original = pod({"name": "app", "image": "app:1", "args": ["--x"]}, {"name": "sidecar", "image": "proxy:1"})
    patched = strategic_merge_patch(original, {"spec": {"containers": [{"name": "sidecar", "image": "proxy:2"},
                                                                       {"name": "new", "image": "new:1"}]}})
    assert patched["spec"]["containers"] == [
        {"name": "app", "image": "app:1", "args": ["--x"]},
        {"name": "sidecar", "image": "proxy:2"},
        {"name": "new", "image": "new:1"},
    ]
    assert patched["metadata"] == original["metadata"]


def test_nested_merge_keys_env_ports_and_volume_mounts() -> None:
    original = pod({"name": "app", "image": "a",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "volumeMounts": [{"mountPath": "/data", "name": "d"}]})
    patched = strategic_merge_patch(original, {"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "B", "value": "two"}],
        "ports": [{"containerPort": 443}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
    }]}})
    c = patched["spec"]["containers"][0]
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}]
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]
    assert c["volumeMounts"] == [{"mountPath": "/data", "name": "d", "readOnly": True}]


def test_patch_delete_directive_removes_a_list_element_by_merge_key() -> None:
    original = pod({"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"})
    patched = strategic_merge_patch(original, {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"},
                                                                       {"name": "gone-already", "$patch": "delete"}]}})
    assert patched["spec"]["containers"] == [{"name": "app", "image": "a"}]


def test_patch_delete_directive_on_a_map_empties_it() -> None:
    patched = strategic_merge_patch(pod({"name": "app", "image": "a"}), {"metadata": {"labels": {"$patch": "delete"}}})
    assert patched["metadata"]["labels"] == {}


def test_patch_replace_directive_on_a_list_replaces_it_whole() -> None:
    original = pod({"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"})
    patched = strategic_merge_patch(original, {"spec": {"containers": [{"name": "only", "image": "c"},
                                                                       {"$patch": "replace"}]}})
    assert patched["spec"]["containers"] == [{"name": "only", "image": "c"}]


def test_patch_replace_directive_on_a_map_replaces_it_whole() -> None:
    patched = strategic_merge_patch(pod({"name": "app", "image": "a"}),
                                    {"metadata": {"labels": {"tier": "db", "$patch": "replace"}}})
    assert patched["metadata"]["labels"] == {"tier": "db"}


def test_an_unknown_patch_directive_is_a_400() -> None:
    with pytest.raises(ApiError) as info:
        strategic_merge_patch(pod({"name": "app", "image": "a"}), {"metadata": {"labels": {"$patch": "bogus"}}})
    assert info.value.code == 400


def test_null_deletes_a_key() -> None:
    patched = strategic_merge_patch(pod({"name": "app", "image": "a"}, nodeName="n1"),
                                    {"spec": {"nodeName": None}, "metadata": {"labels": {"app": None}}})
    assert "nodeName" not in patched["spec"]
    assert patched["metadata"]["labels"] == {}


def test_set_element_order_directives_are_ignored() -> None:
    original = pod({"name": "app", "image": "a"}, {"name": "sidecar", "image": "b"})
    patched = strategic_merge_patch(original, {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
        "containers": [{"name": "app", "image": "a2"}],
    }})
    assert patched["spec"] == {"containers": [{"name": "app", "image": "a2"}, {"name": "sidecar", "image": "b"}]}


def test_finalizers_are_a_union() -> None:
    original = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    patched = strategic_merge_patch(original, {"metadata": {"finalizers": ["b", "c"]}})
    assert patched["metadata"]["finalizers"] == ["a", "b", "c"]


def test_delete_from_primitive_list_removes_only_the_named_values() -> None:
    original = {"metadata": {"name": "x", "finalizers": ["a", "b", "c"]}}
    patched = strategic_merge_patch(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}})
    assert patched["metadata"]["finalizers"] == ["a", "c"]


def test_lists_without_a_merge_key_are_replaced() -> None:
    original = pod({"name": "app", "image": "a", "args": ["--one", "--two"], "command": ["/bin/app"]},
                   tolerations=[{"key": "k", "operator": "Exists"}])
    patched = strategic_merge_patch(original, {"spec": {
        "containers": [{"name": "app", "args": ["--three"]}],
        "tolerations": [{"key": "other", "operator": "Exists"}],
    }})
    assert patched["spec"]["containers"][0]["args"] == ["--three"]
    assert patched["spec"]["containers"][0]["command"] == ["/bin/app"]
    assert patched["spec"]["tolerations"] == [{"key": "other", "operator": "Exists"}]


def test_retain_keys_drops_the_keys_it_does_not_list() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patched = strategic_merge_patch(original, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert patched["spec"]["strategy"] == {"type": "Recreate"}


def test_a_merge_list_element_without_its_merge_key_is_a_400() -> None:
    with pytest.raises(ApiError) as info:
        strategic_merge_patch(pod({"name": "app", "image": "a"}), {"spec": {"containers": [{"image": "b"}]}})
    assert info.value.code == 400


def test_a_strategic_patch_must_be_an_object() -> None:
    with pytest.raises(ApiError) as info:
        strategic_merge_patch({"a": 1}, [{"op": "add"}])
    assert info.value.code == 400


def test_strategic_merge_patch_leaves_its_inputs_untouched() -> None:
    original = pod({"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}]})
    patch = {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]},
             "metadata": {"finalizers": ["f"]}}
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    patched = strategic_merge_patch(original, patch)
    patched["spec"]["containers"][0]["env"].append({"name": "C"})
    patched["metadata"]["labels"]["new"] = "x"
    assert original == before_original
    assert patch == before_patch
