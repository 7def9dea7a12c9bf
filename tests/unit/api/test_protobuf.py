"""Tests for the Kubernetes protobuf body decoder: real kubectl captures and hand-built wire bytes."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from securekube.api.protobuf import ProtobufDecodeError, decode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "protobuf"
CAPTURES = sorted(p.stem for p in FIXTURES.glob("*.pb") if not p.stem.endswith(".unsupported"))

# --- a minimal protobuf writer for hand-built bodies -----------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers go on the wire as 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def num(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def ld(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def s(number: int, value: str) -> bytes:
    return ld(number, value.encode())


def entry(number: int, key: str, value: bytes) -> bytes:
    """One map entry; value is the already-encoded field 2 (or b"" for none)."""
    return ld(number, s(1, key) + value)


def body(api_version: str, kind: str, raw: bytes, *, extra: bytes = b"") -> bytes:
    type_meta = s(1, api_version) + s(2, kind)
    return b"k8s\x00" + ld(1, type_meta) + ld(2, raw) + s(3, "") + s(4, "") + extra


def pod(spec: bytes, metadata: bytes = s(1, "p")) -> bytes:
    return body("v1", "Pod", ld(1, metadata) + ld(2, spec))


def container(*fields: bytes) -> bytes:
    return ld(2, s(1, "c") + s(2, "busybox") + b"".join(fields))


def decode_spec(spec: bytes) -> dict:
    return decode(pod(spec))["spec"]


def rejects(data: bytes, *fragments: str) -> str:
    with pytest.raises(ProtobufDecodeError) as info:
        decode(data)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- real kubectl bodies -----------------------------------------------------------------------


def test_captures_cover_every_kind_kubectl_sends_as_protobuf() -> None:
    kinds = {json.loads((FIXTURES / f"{name}.json").read_text())["kind"] for name in CAPTURES}
    assert kinds >= {
        "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Pod", "Role", "ClusterRole",
        "RoleBinding", "ClusterRoleBinding", "TokenRequest", "SelfSubjectAccessReview",
        "SelfSubjectRulesReview", "SelfSubjectReview",
    }


@pytest.mark.parametrize("name", CAPTURES)
def test_kubectl_capture_decodes_to_its_json_form(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert decode((FIXTURES / f"{name}.pb").read_bytes()) == expected


def test_kubectl_secret_capture_carries_data_as_base64() -> None:
    secret = decode((FIXTURES / "secret.pb").read_bytes())
    assert base64.b64decode(secret["data"]["password"]) == b"example-not-secret"


def test_kubectl_configmap_capture_keeps_binary_data_exact() -> None:
    configmap = decode((FIXTURES / "configmap.pb").read_bytes())
    assert base64.b64decode(configmap["binaryData"]["bin.dat"]) == b"not-a-real-secret\x00\x01\xff"


def test_kubectl_sysadmin_debug_pod_keeps_its_privileges_visible() -> None:
    spec = decode((FIXTURES / "pod-debug-node.pb").read_bytes())["spec"]
    assert spec["hostPID"] is spec["hostNetwork"] is spec["hostIPC"] is True
    assert spec["containers"][0]["securityContext"] == {"privileged": True}
    assert spec["volumes"] == [{"name": "host-root", "hostPath": {"path": "/"}}]


def test_whoami_fallback_to_an_unserved_version_is_refused() -> None:
    data = (FIXTURES / "selfsubjectreview-v1beta1.unsupported.pb").read_bytes()
    rejects(data, "kind securekube cannot decode")


# --- Go JSON presence rules ------------------------------------------------------------------


def test_empty_role_gets_null_rules_like_go_json() -> None:
    assert decode(body("rbac.authorization.k8s.io/v1", "Role", b"")) == {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {}, "rules": None,
    }


def test_rolebinding_without_roleref_gets_a_zero_roleref() -> None:
    binding = decode(body("rbac.authorization.k8s.io/v1", "RoleBinding", ld(1, s(1, "rb"))))
    assert binding["roleRef"] == {"apiGroup": "", "kind": "", "name": ""}
    assert "subjects" not in binding


def test_pointer_fields_sent_as_zero_are_kept() -> None:
    security = ld(15, num(4, 0) + num(5, 0) + num(2, 0))  # runAsUser 0, runAsNonRoot/privileged false
    spec = decode_spec(container(security) + num(4, 0) + num(11, 0))
    assert spec["containers"][0]["securityContext"] == {
        "runAsUser": 0, "runAsNonRoot": False, "privileged": False,
    }
    assert spec["terminationGracePeriodSeconds"] == 0
    assert "hostNetwork" not in spec  # a plain bool: omitempty drops false


def test_configmap_immutable_false_is_kept_when_sent() -> None:
    sent = decode(body("v1", "ConfigMap", ld(1, s(1, "cm")) + num(4, 0)))
    not_sent = decode(body("v1", "ConfigMap", ld(1, s(1, "cm"))))
    assert sent["immutable"] is False
    assert "immutable" not in not_sent


def test_omitempty_fields_sent_empty_are_dropped() -> None:
    metadata = s(1, "n") + s(2, "") + s(3, "") + num(7, 0) + ld(8, b"")
    assert decode(body("v1", "Namespace", ld(1, metadata)))["metadata"] == {"name": "n"}


def test_inline_struct_fields_merge_into_the_parent() -> None:
    key_ref = ld(3, ld(1, s(1, "cm1")) + s(2, "key") + num(3, 1))
    env = ld(7, s(1, "V") + ld(3, key_ref))
    spec = decode_spec(container(env))
    assert spec["containers"][0]["env"] == [
        {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "key", "optional": True}}}
    ]


def test_probe_handler_is_inlined_into_the_probe() -> None:
    probe = ld(10, ld(1, ld(1, s(1, "true"))) + num(4, 7))
    spec = decode_spec(container(probe))
    assert spec["containers"][0]["livenessProbe"] == {"exec": {"command": ["true"]}, "periodSeconds": 7}


# --- value kinds -------------------------------------------------------------------------------


def test_maps_decode_to_objects() -> None:
    metadata = s(1, "n") + entry(11, "app", s(2, "web")) + entry(11, "tier", s(2, "")) + entry(
        12, "note", s(2, "x")
    )
    assert decode(body("v1", "Namespace", ld(1, metadata)))["metadata"] == {
        "name": "n", "labels": {"app": "web", "tier": ""}, "annotations": {"note": "x"},
    }


def test_bytes_map_values_become_base64_including_empty_and_binary() -> None:
    raw = ld(1, s(1, "s")) + entry(2, "bin", ld(2, b"\x00\xff")) + entry(2, "empty", b"")
    assert decode(body("v1", "Secret", raw))["data"] == {"bin": "AP8=", "empty": ""}


def test_negative_integers_decode_from_ten_byte_varints() -> None:
    assert len(varint(-5)) == 10
    spec = decode_spec(num(5, -5) + num(25, -10))  # activeDeadlineSeconds int64, priority int32
    assert spec["activeDeadlineSeconds"] == -5
    assert spec["priority"] == -10


def test_repeated_ints_decode_the_same_packed_or_unpacked() -> None:
    unpacked = num(4, 1000) + num(4, 2000)
    packed = ld(4, varint(1000) + varint(2000))
    for groups in (unpacked, packed, num(4, 1000) + ld(4, varint(2000))):
        assert decode_spec(ld(14, groups))["securityContext"] == {"supplementalGroups": [1000, 2000]}


def test_nested_messages_decode_at_depth() -> None:
    capabilities = ld(1, s(1, "NET_ADMIN") + s(2, "ALL"))
    spec = decode_spec(container(ld(15, capabilities + ld(11, s(1, "RuntimeDefault")))))
    assert spec["containers"][0]["securityContext"] == {
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_time_becomes_rfc3339_with_whole_seconds() -> None:
    stamp = num(1, 1704164645) + num(2, 999)  # 2024-01-02T03:04:05Z plus nanos JSON does not carry
    metadata = decode(body("v1", "Namespace", ld(1, s(1, "n") + ld(8, stamp) + ld(9, stamp))))["metadata"]
    assert metadata["creationTimestamp"] == "2024-01-02T03:04:05Z"
    assert metadata["deletionTimestamp"] == "2024-01-02T03:04:05Z"


def test_zero_times_follow_go_json() -> None:
    zero = ld(9, b"")  # empty Time is the zero time
    year_one = ld(8, num(1, -62135596800))
    metadata = decode(body("v1", "Namespace", ld(1, zero + year_one)))["metadata"]
    assert metadata == {"deletionTimestamp": None}  # creationTimestamp is omitzero
    token = decode(body("authentication.k8s.io/v1", "TokenRequest", b""))
    assert token["status"] == {"token": "", "expirationTimestamp": None}


def test_epoch_time_is_not_the_zero_time() -> None:
    metadata = decode(body("v1", "Namespace", ld(1, ld(8, num(1, 0)))))["metadata"]
    assert metadata["creationTimestamp"] == "1970-01-01T00:00:00Z"


def test_quantities_keep_their_string_form() -> None:
    resources = ld(8, entry(1, "cpu", ld(2, s(1, "500m"))) + entry(2, "memory", ld(2, s(1, "1Gi"))))
    volume = ld(1, s(1, "v") + ld(2, ld(2, ld(2, s(1, "64Mi")))))
    spec = decode_spec(container(resources) + volume)
    assert spec["containers"][0]["resources"] == {"limits": {"cpu": "500m"}, "requests": {"memory": "1Gi"}}
    assert spec["volumes"] == [{"name": "v", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_unset_divisor_quantity_is_zero_like_go() -> None:
    env = ld(7, s(1, "MEM") + ld(3, ld(2, s(2, "limits.memory"))))
    spec = decode_spec(container(env))
    assert spec["containers"][0]["env"][0]["valueFrom"] == {
        "resourceFieldRef": {"resource": "limits.memory", "divisor": "0"}
    }


def test_int_or_string_ports() -> None:
    by_number = ld(11, ld(1, ld(3, ld(1, num(1, 0) + num(2, 8080)))))
    by_name = ld(22, ld(1, ld(2, ld(2, num(1, 1) + s(3, "http")))))
    probes = decode_spec(container(by_number, by_name))["containers"][0]
    assert probes["readinessProbe"] == {"tcpSocket": {"port": 8080}}
    assert probes["startupProbe"] == {"httpGet": {"port": "http"}}


def test_csr_request_bytes_become_base64() -> None:
    spec = ld(1, b"-----BEGIN CERTIFICATE REQUEST-----") + s(7, "kubernetes.io/kube-apiserver-client")
    spec += s(5, "client auth") + entry(6, "scopes", ld(2, s(1, "a") + s(1, "b")))
    csr = decode(body("certificates.k8s.io/v1", "CertificateSigningRequest", ld(1, s(1, "c")) + ld(2, spec)))
    assert base64.b64decode(csr["spec"]["request"]) == b"-----BEGIN CERTIFICATE REQUEST-----"
    assert csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client"
    assert csr["spec"]["usages"] == ["client auth"]
    assert csr["spec"]["extra"] == {"scopes": ["a", "b"]}
    assert csr["status"] == {}


def test_delete_options_decode_in_a_resource_group_version() -> None:
    raw = num(1, 0) + ld(2, s(1, "uid-1")) + s(4, "Foreground") + s(5, "All")
    for version in ("v1", "meta.k8s.io/v1"):
        assert decode(body(version, "DeleteOptions", raw)) == {
            "apiVersion": version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground", "dryRun": ["All"],
        }


def test_subject_access_review_with_extra_and_selectors() -> None:
    attributes = s(2, "list") + s(5, "pods") + ld(9, ld(2, s(1, "app") + s(2, "In") + s(3, "web")))
    spec = ld(1, attributes) + s(3, "alice") + s(4, "devs") + entry(5, "team", ld(2, s(1, "blue")))
    review = decode(body("authorization.k8s.io/v1", "SubjectAccessReview", ld(2, spec)))
    assert review["spec"] == {
        "resourceAttributes": {
            "verb": "list", "resource": "pods",
            "labelSelector": {"requirements": [{"key": "app", "operator": "In", "values": ["web"]}]},
        },
        "user": "alice", "groups": ["devs"], "extra": {"team": ["blue"]},
    }
    assert review["status"] == {"allowed": False}


# --- accepted-only-when-empty and refused fields ----------------------------------------------


def test_old_clients_empty_cluster_name_is_accepted_but_a_value_is_not() -> None:
    assert decode(body("v1", "Namespace", ld(1, s(1, "n") + s(15, ""))))["metadata"] == {"name": "n"}
    rejects(body("v1", "Namespace", ld(1, s(1, "n") + s(15, "x"))), "ObjectMeta field 15 (clusterName)")


def test_managed_fields_are_refused() -> None:
    rejects(body("v1", "Namespace", ld(1, ld(17, s(1, "kubectl")))), "ObjectMeta field 17 (managedFields)")


def test_empty_pod_status_is_accepted_and_a_filled_one_refused() -> None:
    empty_status = ld(3, s(1, "") + s(9, "") + num(17, 0))
    assert decode(body("v1", "Pod", ld(2, container()) + empty_status))["status"] == {}
    rejects(body("v1", "Pod", ld(3, s(1, "Running"))), "PodStatus field 1 (phase)", "must be empty")


def test_ephemeral_containers_and_unsupported_volumes_are_refused() -> None:
    rejects(pod(ld(34, ld(1, s(1, "x")))), "PodSpec field 34 (ephemeralContainers)")
    rejects(pod(ld(1, s(1, "v") + ld(2, ld(3, s(1, "disk"))))), "VolumeSource field 3 (gcePersistentDisk)")


# --- malformed input ---------------------------------------------------------------------------


def test_bad_magic_is_rejected() -> None:
    rejects(b"", "magic")
    rejects(b'{"kind":"Pod"}', "magic")
    rejects(b"k8s\x01" + ld(1, s(1, "v1") + s(2, "Pod")), "magic")


def test_missing_type_meta_is_rejected() -> None:
    rejects(b"k8s\x00", "apiVersion", "missing")
    rejects(b"k8s\x00" + ld(1, s(1, "v1")), "kind", "missing")


def test_truncated_varint_is_rejected() -> None:
    rejects(b"k8s\x00" + b"\x08\x96", "Unknown field 1", "truncated varint")
    rejects(pod(num(4, 300)[:-1]), "PodSpec field 4", "truncated varint")


def test_varint_longer_than_64_bits_is_rejected() -> None:
    rejects(pod(tag(4, 0) + b"\xff" * 9 + b"\x02"), "overflows 64 bits")
    rejects(pod(tag(4, 0) + b"\x80" * 10 + b"\x00"), "PodSpec field 4", "overflows 64 bits")


def test_length_past_end_is_rejected() -> None:
    rejects(pod(tag(8, 2) + varint(50) + b"short"), "PodSpec field 8", "past the end")
    rejects(b"k8s\x00" + tag(2, 2) + varint(1000), "Unknown field 2", "past the end")


def test_unknown_fields_are_rejected_everywhere() -> None:
    rejects(body("v1", "Pod", b"", extra=s(5, "x")), "Unknown field 5", "unknown field")
    rejects(body("v1", "Namespace", ld(1, s(99, "x"))), "ObjectMeta field 99", "unknown field")
    rejects(pod(container(num(200, 1))), "Container field 200", "unknown field")


def test_unsupported_kind_is_rejected() -> None:
    rejects(body("apps/v1", "Deployment", b""), "kind securekube cannot decode")
    rejects(body("v1", "Role", b""), "kind securekube cannot decode")


def test_wrong_wire_type_is_rejected() -> None:
    rejects(body("v1", "Namespace", ld(1, num(1, 7))), "ObjectMeta field 1 (name)", "wrong wire type 0")
    rejects(pod(s(4, "30")), "PodSpec field 4 (terminationGracePeriodSeconds)", "wrong wire type 2")
    rejects(pod(tag(4, 1) + b"\x00" * 8), "wrong wire type 1")
    rejects(pod(tag(4, 5) + b"\x00" * 4), "wrong wire type 5")


@pytest.mark.parametrize("wire_type", [3, 4])
def test_group_wire_types_are_rejected(wire_type: int) -> None:
    rejects(pod(tag(2, wire_type)), "PodSpec field 2", "group wire types")


@pytest.mark.parametrize("wire_type", [6, 7])
def test_invalid_wire_types_are_rejected(wire_type: int) -> None:
    rejects(pod(tag(2, wire_type)), "invalid wire type")


def test_field_number_zero_is_rejected() -> None:
    rejects(pod(num(0, 1)), "invalid field number 0")


def test_duplicate_fields_and_map_keys_are_rejected() -> None:
    rejects(pod(num(4, 1) + num(4, 2)), "PodSpec field 4", "more than once")
    rejects(body("v1", "Namespace", ld(1, ld(1, b"") * 2)), "ObjectMeta field 1", "more than once")
    labels = entry(11, "app", s(2, "a")) + entry(11, "app", s(2, "b"))
    rejects(body("v1", "Namespace", ld(1, labels)), "ObjectMeta field 11 (labels)", "duplicate map key")


def test_invalid_values_are_rejected() -> None:
    rejects(body("v1", "Namespace", ld(1, ld(1, b"\xff\xfe"))), "ObjectMeta field 1", "UTF-8")
    rejects(pod(num(30, 2)), "PodSpec field 30 (enableServiceLinks)", "neither 0 nor 1")
    rejects(pod(num(25, 1 << 31)), "PodSpec field 25 (priority)", "int32 range")
    rejects(pod(container(ld(8, entry(1, "cpu", ld(2, s(1, "lots")))))), "not a valid quantity")
    probe = ld(11, ld(1, ld(3, ld(1, num(1, 2)))))
    rejects(pod(container(probe)), "IntOrString field 1", "unknown type")
    rejects(body("v1", "Namespace", ld(1, ld(8, num(1, 1 << 40)))), "Time field 1", "out of range")


def test_envelope_encodings_other_than_plain_protobuf_are_rejected() -> None:
    type_meta = ld(1, s(1, "v1") + s(2, "Namespace"))
    rejects(b"k8s\x00" + type_meta + ld(2, b"") + s(3, "gzip"), "contentEncoding")
    rejects(b"k8s\x00" + type_meta + ld(2, b"{}") + s(4, "application/json"), "contentType")


def test_errors_never_echo_values_from_the_body() -> None:
    secret_value = "s3cr3t-value-that-must-not-leak"
    raw = ld(1, s(1, "s")) + entry(2, "password", ld(2, secret_value.encode())) + num(99, 1)
    message = rejects(body("v1", "Secret", raw), "Secret field 99")
    assert secret_value not in message
    bad_utf8 = secret_value.encode() + b"\xff"
    message = rejects(body("v1", "Secret", ld(1, s(1, "s")) + ld(4, s(1, "k") + ld(2, bad_utf8))), "UTF-8")
    assert secret_value not in message
