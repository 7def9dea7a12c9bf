"""audit.k8s.io/v1 Event building: upstream's shape, levels, and secret values that never get in."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest

from securekube.audit.event import (
    event_list,
    micro_time,
    new_event,
    object_reference,
    redact_for_level,
    response_status,
    strip_managed_fields,
    user_info,
)
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes

RECEIVED = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
DONE = RECEIVED + timedelta(milliseconds=7)
ALICE = UserInfo("alice", uid="u-1", groups=("dev", "system:authenticated"), extra={"scopes": ("a", "b")})


def test_micro_time_is_rfc3339_utc_with_microseconds() -> None:
    assert micro_time(RECEIVED) == "2024-01-02T03:04:05.123456Z"
    plus_two = timezone(timedelta(hours=2))
    assert micro_time(datetime(2024, 1, 2, 5, 4, 5, 0, tzinfo=plus_two)) == "2024-01-02T03:04:05.000000Z"
    # RFC 3339 years have four digits, also before the year 1000.
    assert micro_time(datetime(5, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "0005-01-02T03:04:05.000000Z"
    with pytest.raises(ValueError):
        micro_time(datetime(2024, 1, 2))


def test_a_metadata_event_has_upstreams_fields_in_upstreams_order() -> None:
    attrs = Attributes(ALICE, "get", True, namespace="default", api_version="v1", resource="pods", name="web")
    event = new_event(
        audit_id="5b9e1a2c-0000-4000-8000-000000000001", stage="ResponseComplete", level="Metadata",
        request_uri="/api/v1/namespaces/default/pods/web", verb="get", user=ALICE,
        impersonated_user=UserInfo("bob"), source_ips=["10.0.0.1"], user_agent="kubectl/v1.30.0",
        object_ref=object_reference(attrs, uid="pod-uid", resource_version="42"), status=response_status(200),
        request_object={"kind": "Pod"}, response_object={"kind": "Pod"},
        request_received=RECEIVED, stage_time=DONE,
        annotations={"authorization.k8s.io/decision": "allow"})
    assert event == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "5b9e1a2c-0000-4000-8000-000000000001",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods/web",
        "verb": "get",
        "user": {"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"],
                 "extra": {"scopes": ["a", "b"]}},
        "impersonatedUser": {"username": "bob"},
        "sourceIPs": ["10.0.0.1"],
        "userAgent": "kubectl/v1.30.0",
        "objectRef": {"resource": "pods", "namespace": "default", "name": "web", "uid": "pod-uid",
                      "apiVersion": "v1", "resourceVersion": "42"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-01-02T03:04:05.123456Z",
        "stageTimestamp": "2024-01-02T03:04:05.130456Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    assert list(event) == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
                           "impersonatedUser", "sourceIPs", "userAgent", "objectRef", "responseStatus",
                           "requestReceivedTimestamp", "stageTimestamp", "annotations"]
    json.dumps(event)  # plain JSON types only


def test_optional_fields_are_omitted_like_upstream() -> None:
    event = new_event(audit_id="id", stage="RequestReceived", level="Metadata", request_uri="/version",
                      verb="get", user=UserInfo("system:anonymous"), request_received=RECEIVED)
    assert set(event) == {"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
                          "requestReceivedTimestamp", "stageTimestamp"}
    assert user_info(UserInfo("")) == {}


def test_object_reference() -> None:
    listing = Attributes(ALICE, "list", True, namespace="prod", api_group="apps", api_version="v1",
                         resource="deployments")
    assert object_reference(listing) == {"resource": "deployments", "namespace": "prod", "apiGroup": "apps",
                                         "apiVersion": "v1"}
    scale = Attributes(ALICE, "update", True, namespace="prod", api_group="apps", api_version="v1",
                       resource="deployments", subresource="scale", name="web")
    assert object_reference(scale)["subresource"] == "scale"
    assert object_reference(Attributes(ALICE, "get", False, path="/healthz")) is None


def test_response_status_for_a_failure() -> None:
    assert response_status(403, status="Failure", message="pods is forbidden", reason="Forbidden",
                           details={"kind": "pods"}) == {
        "metadata": {}, "status": "Failure", "message": "pods is forbidden", "reason": "Forbidden",
        "details": {"kind": "pods"}, "code": 403}


POD = {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "web"}}


@pytest.mark.parametrize(("level", "has_request", "has_response"), [
    ("Metadata", False, False), ("Request", True, False), ("RequestResponse", True, True)])
def test_levels_decide_which_bodies_are_kept(level: str, has_request: bool, has_response: bool) -> None:
    event = new_event(audit_id="id", stage="ResponseComplete", level=level, request_uri="/api/v1/namespaces/d/pods",
                      verb="create", user=ALICE, request_received=RECEIVED,
                      object_ref={"resource": "pods", "namespace": "d", "apiVersion": "v1"},
                      request_object=POD, response_object=POD)
    assert ("requestObject" in event) is has_request
    assert ("responseObject" in event) is has_response


def test_non_resource_requests_never_carry_bodies() -> None:
    event = new_event(audit_id="id", stage="ResponseComplete", level="RequestResponse", request_uri="/x",
                      verb="post", user=ALICE, request_received=RECEIVED, request_object={"a": 1},
                      response_object={"b": 2})
    assert "requestObject" not in event and "responseObject" not in event


def test_level_none_makes_no_event() -> None:
    with pytest.raises(ValueError, match="Metadata, Request or RequestResponse"):
        new_event(audit_id="id", stage="ResponseComplete", level="None", request_uri="/", verb="get",
                  user=ALICE, request_received=RECEIVED)


SECRET = {
    "kind": "Secret", "apiVersion": "v1",
    "metadata": {"name": "db", "namespace": "d", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}',
        "team": "payments"}},
    "type": "Opaque", "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "hunter2"},
}
SECRET_REF = {"resource": "secrets", "namespace": "d", "name": "db", "apiVersion": "v1"}


def test_secret_values_never_reach_an_event_even_at_request_response() -> None:
    original = copy.deepcopy(SECRET)
    event = new_event(audit_id="id", stage="ResponseComplete", level="RequestResponse",
                      request_uri="/api/v1/namespaces/d/secrets", verb="create", user=ALICE,
                      request_received=RECEIVED, object_ref=SECRET_REF, request_object=SECRET,
                      response_object=SECRET)
    text = json.dumps(event)
    assert "aHVudGVyMg==" not in text and "hunter2" not in text
    assert event["requestObject"]["metadata"]["annotations"] == {"team": "payments"}
    assert event["responseObject"]["type"] == "Opaque"
    assert SECRET == original  # the caller's object is untouched


def test_patches_of_secrets_are_stripped_or_dropped() -> None:
    merge_patch = {"data": {"password": "bmV3"}, "metadata": {"labels": {"a": "b"}}}
    request, _ = redact_for_level("Request", merge_patch, None, resource="secrets")
    assert request == {"metadata": {"labels": {"a": "b"}}}
    json_patch = [{"op": "replace", "path": "/data/password", "value": "bmV3"}]
    assert redact_for_level("Request", json_patch, None, resource="secrets") == (None, None)
    # the same patch to a config map is kept (configmaps are handled by the policy, not here)
    assert redact_for_level("Request", json_patch, None, resource="configmaps")[0] == json_patch


def test_secrets_inside_lists_and_tables_are_stripped() -> None:
    secret_list = {"kind": "SecretList", "apiVersion": "v1", "items": [SECRET, SECRET]}
    table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [{"cells": ["db"], "object": SECRET}]}
    _, listed = redact_for_level("RequestResponse", None, secret_list, resource="secrets")
    _, tabled = redact_for_level("RequestResponse", None, table, resource="secrets")
    assert "aHVudGVyMg==" not in json.dumps([listed, tabled])
    assert [item["metadata"]["name"] for item in listed["items"]] == ["db", "db"]


def test_tokens_are_stripped_from_token_requests_and_reviews() -> None:
    token_request = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                     "spec": {"audiences": ["api"]}, "status": {"token": "eyJhbGciOi.x.y", "expirationTimestamp": "t"}}
    review = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": "eyJhbGciOi.x.y"},
              "status": {"authenticated": True, "user": {"username": "alice"}}}
    request, response = redact_for_level("RequestResponse", token_request, token_request,
                                         resource="serviceaccounts", subresource="token")
    assert response["status"] == {"expirationTimestamp": "t"} and request["spec"] == {"audiences": ["api"]}
    request, response = redact_for_level("RequestResponse", review, review, api_group="authentication.k8s.io",
                                         resource="tokenreviews")
    assert request["spec"] == {} and response["status"]["user"] == {"username": "alice"}
    assert "eyJhbGciOi" not in json.dumps([request, response])


def test_omit_managed_fields_strips_objects_and_list_items() -> None:
    managed = {"kind": "Pod", "metadata": {"name": "a", "managedFields": [{"manager": "kubectl"}]}}
    assert strip_managed_fields(managed) == {"kind": "Pod", "metadata": {"name": "a"}}
    assert managed["metadata"]["managedFields"]  # the original is untouched
    listed = strip_managed_fields({"kind": "PodList", "items": [managed, managed]})
    assert listed["items"] == [{"kind": "Pod", "metadata": {"name": "a"}}] * 2
    event = new_event(audit_id="id", stage="ResponseComplete", level="RequestResponse", request_uri="/api/v1/pods",
                      verb="create", user=ALICE, request_received=RECEIVED, object_ref={"resource": "pods"},
                      request_object=managed, response_object=managed, omit_managed_fields=True)
    assert "managedFields" not in json.dumps(event)


def test_event_list_is_what_the_webhook_posts() -> None:
    event = new_event(audit_id="id", stage="ResponseComplete", level="Metadata", request_uri="/", verb="get",
                      user=ALICE, request_received=RECEIVED)
    assert event_list([event]) == {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                                   "items": [event]}
