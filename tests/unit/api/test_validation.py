"""Field validation messages, word for word as upstream's apimachinery validation writes them."""
from __future__ import annotations

import pytest

from securekube.api import validation as v
from securekube.api.errors import Cause, invalid

SUBDOMAIN_REGEX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 f"validation is '{SUBDOMAIN_REGEX}')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
KEY_NAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def messages(causes: list[Cause]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


# -- object names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "web-1", "0", "example.com", "a.b-c.d", "x" * 253])
def test_valid_dns1123_subdomains(name: str) -> None:
    assert v.dns1123_subdomain("metadata.name", name) == []


def test_an_invalid_subdomain_has_upstreams_message() -> None:
    assert messages(v.dns1123_subdomain("metadata.name", "Bad_Name")) == [
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']
    causes = v.dns1123_subdomain("metadata.name", "Bad_Name")
    assert causes[0].reason == "FieldValueInvalid"


def test_a_too_long_subdomain_reports_the_length_limit() -> None:
    assert [c.message.split(": ", 2)[2] for c in v.dns1123_subdomain("metadata.name", "a" * 254)] == [
        "must be no more than 253 characters"]
    both = v.dns1123_subdomain("metadata.name", "-" * 254)
    assert [c.message.split(": ", 2)[2] for c in both] == ["must be no more than 253 characters", SUBDOMAIN_MSG]


@pytest.mark.parametrize("name", ["a", "my-name", "123-abc", "x" * 63])
def test_valid_dns1123_labels(name: str) -> None:
    assert v.dns1123_label("metadata.name", name) == []


def test_an_invalid_label_has_upstreams_message() -> None:
    assert messages(v.dns1123_label("metadata.name", "-bad")) == [f'metadata.name: Invalid value: "-bad": {LABEL_MSG}']
    assert messages(v.dns1123_label("metadata.name", "x" * 64)) == [
        f'metadata.name: Invalid value: "{"x" * 64}": must be no more than 63 characters']


def test_a_label_with_dots_says_so() -> None:
    # A valid subdomain that is not a valid label can only be wrong because of its dots.
    assert messages(v.dns1123_label("metadata.name", "a.b")) == [
        'metadata.name: Invalid value: "a.b": must not contain dots']


def test_a_name_that_is_not_a_string_is_a_type_error() -> None:
    causes = v.dns1123_subdomain("metadata.name", 5)
    assert [(c.reason, c.message) for c in causes] == [("FieldValueTypeInvalid", "Invalid value: 5: must be a string")]


def test_the_status_message_for_one_and_for_several_causes() -> None:
    one = invalid("ConfigMap", "Bad_Name", v.dns1123_subdomain("metadata.name", "Bad_Name"))
    assert one.message == f'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'
    assert one.code == 422 and one.reason == "Invalid"
    assert one.details["causes"] == [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                      "message": f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'}]
    several = invalid("Pod", "p", [v.required("spec.containers"), v.required("metadata.namespace")])
    assert several.message == 'Pod "p" is invalid: [spec.containers: Required value, metadata.namespace: Required value]'


# -- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["app", "app.kubernetes.io/name", "Upper_Case.ok", "1234/5678", "a" * 63,
                                 "a" * 253 + "/" + "b" * 63])
def test_valid_label_keys(key: str) -> None:
    assert v.labels("metadata.labels", {key: "x"}) == []


def test_a_label_key_with_a_bad_name_part() -> None:
    assert messages(v.labels("metadata.labels", {"-app": "x"})) == [
        f'metadata.labels: Invalid value: "-app": {KEY_NAME_MSG}']


def test_a_label_key_with_a_long_name_part() -> None:
    key = "k" * 64
    assert messages(v.labels("metadata.labels", {key: "x"})) == [
        f'metadata.labels: Invalid value: "{key}": name part must be no more than 63 bytes']


def test_a_label_key_with_an_empty_name_part() -> None:
    assert messages(v.labels("metadata.labels", {"example.com/": "x"})) == [
        'metadata.labels: Invalid value: "example.com/": name part must be non-empty',
        f'metadata.labels: Invalid value: "example.com/": {KEY_NAME_MSG}',
    ]


def test_a_label_key_with_an_empty_prefix() -> None:
    assert messages(v.labels("metadata.labels", {"/app": "x"})) == [
        'metadata.labels: Invalid value: "/app": prefix part must be non-empty']


def test_a_label_key_whose_prefix_is_not_a_lowercase_subdomain() -> None:
    assert messages(v.labels("metadata.labels", {"Example.com/app": "x"})) == [
        f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MSG}']


def test_a_label_key_with_two_slashes() -> None:
    assert messages(v.labels("metadata.labels", {"a/b/c": "x"})) == [
        'metadata.labels: Invalid value: "a/b/c": a valid label key must consist of alphanumeric characters, '
        "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
        "or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional "
        "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]


@pytest.mark.parametrize("value", ["", "v", "MyValue", "my_value", "1.2.3", "a" * 63])
def test_valid_label_values(value: str) -> None:
    assert v.labels("metadata.labels", {"k": value}) == []


def test_an_invalid_label_value() -> None:
    assert messages(v.labels("metadata.labels", {"k": "bad value"})) == [
        f'metadata.labels: Invalid value: "bad value": {LABEL_VALUE_MSG}']


def test_a_too_long_label_value() -> None:
    value = "a" * 64
    assert messages(v.labels("metadata.labels", {"k": value})) == [
        f'metadata.labels: Invalid value: "{value}": must be no more than 63 bytes']


def test_labels_must_be_a_map_of_strings() -> None:
    assert [c.reason for c in v.labels("metadata.labels", ["a"])] == ["FieldValueTypeInvalid"]
    assert messages(v.labels("metadata.labels", {"k": 1})) == ["metadata.labels[k]: Invalid value: 1: must be a string"]
    assert v.labels("metadata.labels", None) == []


# -- annotations ------------------------------------------------------------------------------


def test_annotation_keys_are_checked_case_insensitively() -> None:
    # Upstream lowercases annotation keys before checking: an upper-case prefix is fine there, not in labels.
    assert v.annotations("metadata.annotations", {"Example.COM/Key": "v"}) == []
    assert v.labels("metadata.labels", {"Example.COM/Key": "v"}) != []


def test_an_invalid_annotation_key_is_reported_as_written() -> None:
    assert messages(v.annotations("metadata.annotations", {"Bad Key": "v"})) == [
        f'metadata.annotations: Invalid value: "Bad Key": {KEY_NAME_MSG}']


def test_annotation_values_may_be_anything() -> None:
    assert v.annotations("metadata.annotations", {"note": "any text: with spaces, 'quotes' and\nnewlines"}) == []


def test_annotations_up_to_256_kib_in_total_are_accepted() -> None:
    assert v.annotations("metadata.annotations", {"k": "x" * (256 * 1024 - 1)}) == []


def test_annotations_over_256_kib_are_too_long_and_the_value_is_not_echoed() -> None:
    causes = v.annotations("metadata.annotations", {"k": "secret-ish" + "x" * (256 * 1024)})
    assert [(c.reason, c.field, c.message) for c in causes] == [
        ("FieldValueTooLong", "metadata.annotations", "Too long: may not be more than 262144 bytes")]


def test_annotation_size_counts_keys_and_values_of_all_entries() -> None:
    half = 128 * 1024
    assert v.annotations("metadata.annotations", {"a": "x" * (half - 1), "b": "y" * (half - 1)}) == []
    causes = v.annotations("metadata.annotations", {"a": "x" * half, "b": "y" * half})
    assert [c.reason for c in causes] == ["FieldValueTooLong"]


# -- the other shared messages ----------------------------------------------------------------


def test_required_unsupported_and_forbidden_messages() -> None:
    assert v.required("spec.containers").message == "Required value"
    assert v.required("metadata.name", "name or generateName is required").message == (
        "Required value: name or generateName is required")
    assert v.unsupported("spec.restartPolicy", "Sometimes", ["Always", "OnFailure", "Never"]).message == (
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')
    assert v.forbidden("spec", "pod updates may not change fields").message == (
        "Forbidden: pod updates may not change fields")


@pytest.mark.parametrize(("name", "detail"), [(".", "may not be '.'"), ("..", "may not be '..'"),
                                              ("a/b", "may not contain '/'"), ("a%b", "may not contain '%'")])
def test_path_segment_names(name: str, detail: str) -> None:
    assert [c.message for c in v.path_segment_name("metadata.name", name)] == [f'Invalid value: "{name}": {detail}']
    assert v.path_segment_name("metadata.name", "system:discovery") == []
