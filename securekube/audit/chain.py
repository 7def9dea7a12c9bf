"""The hash chain and the signed checkpoints that make an audit log tamper-evident.

Every line of a securekube audit log is an unchanged audit.k8s.io/v1 Event (upstream tools read
it as any other) that carries three extra annotations, always the last members of `annotations`,
which is always the event's last field:

    audit.securekube.io/seq    the record's position in the chain: 0, 1, 2, ... across rotated files
    audit.securekube.io/prev   the hash of the record before it (64 zeros for record 0)
    audit.securekube.io/hash   SHA-256 (hex) of the record's JSON text without this annotation

The hash is over the exact bytes of the line, not a re-serialization: a line ends with
`,"audit.securekube.io/hash":"<hex>"}}`, and the hash is SHA-256 of everything before that
followed by `}}` - which is the record's JSON without its hash. A verifier in any language needs
no canonical JSON, and no byte of a line (whitespace, key order, a duplicated key) can change
unnoticed.

A hash chain alone can be recomputed by anyone who edits the file, so the writer also appends
**checkpoints**: Event-shaped records (verb `checkpoint`, user `system:securekube:audit-log`) that
are links of the same chain and carry an Ed25519 signature over a small statement:

    {"head": <hash of the record before the checkpoint>, "keyId": ..., "reason": ...,
     "retainedFromSeq": <first record still kept after rotation deleted old files>,
     "seq": <the checkpoint's own seq = number of records before it>, "time": ..., "v": 1}

The statement is stored as the annotation `audit.securekube.io/checkpoint` (the exact signed
bytes) with the signature in `audit.securekube.io/signature` (base64). Everything before a valid
checkpoint is sealed: changing, removing, adding or reordering any earlier record changes the
head it signed, which only the holder of the private key can re-sign.

Why inline, and not only in a sidecar file: inline checkpoints are ordered with the events they
seal, travel with every copy and rotated file, and are themselves protected by the chain (removing
one leaves a gap). What no file can prove on its own is that nothing was cut from its end, so the
writer also keeps the latest checkpoint in a witness file next to the log (`<log>.checkpoint`) and
hands every checkpoint to an optional callback (e.g. the webhook, for a copy off the host):
truncating the log then also needs the witness rolled back, and the off-host copy defeats that.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from securekube.audit.event import API_VERSION, LEVEL_METADATA, STAGE_RESPONSE_COMPLETE

SEQ = "audit.securekube.io/seq"
PREV = "audit.securekube.io/prev"
HASH = "audit.securekube.io/hash"
CHECKPOINT = "audit.securekube.io/checkpoint"
SIGNATURE = "audit.securekube.io/signature"
CHAIN_ANNOTATIONS = (SEQ, PREV, HASH, CHECKPOINT, SIGNATURE)

GENESIS_PREV = "0" * 64
CHECKPOINT_VERB = "checkpoint"
CHECKPOINT_USER = "system:securekube:audit-log"
CHECKPOINT_URI = "/audit.securekube.io/checkpoint"
STATEMENT_VERSION = 1

# Why a checkpoint was written; `verify` uses "close" and "resume" to spot records appended to a
# log after its writer shut down.
REASON_START = "start"  # record 0 of a new chain
REASON_PERIODIC = "periodic"  # N records or T seconds since the last one
REASON_ROTATE = "rotate"  # first record of a new file after rotation
REASON_RESUME = "resume"  # first record after a restart that followed a clean close
REASON_RECOVER = "recover"  # first record after a restart that followed a crash
REASON_CLOSE = "close"  # last record before a clean shutdown
REASONS = frozenset({REASON_START, REASON_PERIODIC, REASON_ROTATE, REASON_RESUME, REASON_RECOVER, REASON_CLOSE})
RUN_STARTS = frozenset({REASON_START, REASON_RESUME, REASON_RECOVER})


class ChainError(ValueError):
    """A record or checkpoint that is not a well-formed link of the chain; the message says why."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII escapes: the byte form of a checkpoint statement."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def encode_record(record: dict[str, Any]) -> bytes:
    """A record's JSON text, cut open so that `link_line` can add the chain annotations.

    Compact, ASCII-only, annotations last; the result ends inside the (possibly new) annotations
    object, ready for one more member. Raises TypeError or ValueError for what is not plain JSON
    (bytes, NaN, ...). Runs in the caller's thread, so the single writer only splices and hashes.
    """
    annotations = record.get("annotations")
    ordered = {key: value for key, value in record.items() if key != "annotations"}
    if annotations:
        ordered["annotations"] = annotations
    # ensure_ascii: no raw U+2028 or invalid UTF-8 can ever split or break a line.
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
    if annotations:
        return text[:-2] + b","  # '...,"annotations":{"k":"v"' + ','
    if not ordered:
        return b'{"annotations":{'
    return text[:-1] + b',"annotations":{'


def link_line(encoded: bytes, seq: int, prev: str) -> tuple[bytes, str]:
    """The log line for an encoded record at `seq` after `prev`, and the record's hash."""
    body = encoded + f'"{SEQ}":"{seq}","{PREV}":"{prev}"'.encode("ascii")
    digest = hashlib.sha256(body + b"}}").hexdigest()
    return body + _HASH_MEMBER + digest.encode("ascii") + b'"}}\n', digest


def line_hashes(line: bytes) -> tuple[str, str] | None:
    """(stored, computed) hash of a log line, or None when the line does not end with a hash."""
    match = _HASH_SUFFIX.search(line)
    if match is None:
        return None
    computed = hashlib.sha256(line[:match.start()] + b"}}").hexdigest()
    return match.group(1).decode("ascii"), computed


_HASH_MEMBER = b',"' + HASH.encode("ascii") + b'":"'
_HASH_SUFFIX = re.compile(re.escape(_HASH_MEMBER) + rb'([0-9a-f]{64})"\}\}\n?\Z')


@dataclass(frozen=True)
class ChainLink:
    """The chain annotations of one record, checked for shape (not yet for truth)."""

    seq: int
    prev: str
    hash: str


def chain_link(record: Any) -> ChainLink:
    """Reads a record's seq/prev/hash annotations; raises ChainError when any is missing or malformed."""
    annotations = record.get("annotations") if isinstance(record, dict) else None
    if not isinstance(annotations, dict):
        raise ChainError("no annotations, so no hash chain")
    seq_text, prev, digest = annotations.get(SEQ), annotations.get(PREV), annotations.get(HASH)
    if seq_text is None or prev is None or digest is None:
        missing = ", ".join(k for k, v in ((SEQ, seq_text), (PREV, prev), (HASH, digest)) if v is None)
        raise ChainError(f"missing chain annotation(s) {missing}")
    if not (isinstance(seq_text, str) and seq_text.isascii() and seq_text.isdigit()
            and str(int(seq_text)) == seq_text):
        raise ChainError(f"{SEQ} is not a decimal number")
    if not (_is_sha256_hex(prev) and _is_sha256_hex(digest)):
        raise ChainError(f"{PREV} or {HASH} is not a SHA-256 hex digest")
    return ChainLink(int(seq_text), prev, digest)


def is_checkpoint(event: Any) -> bool:
    """Whether an event is a securekube checkpoint record rather than a request (review tools skip these)."""
    annotations = event.get("annotations") if isinstance(event, dict) else None
    return isinstance(annotations, dict) and CHECKPOINT in annotations


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a signing key: the first 16 hex digits of SHA-256 over its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """The statement a checkpoint signs: everything before record `seq` hashes to `head`."""

    seq: int
    head: str
    time: str
    reason: str
    retained_from_seq: int
    key_id: str

    def statement(self) -> str:
        """The exact text that is signed and stored in the checkpoint annotation."""
        return canonical_json({
            "head": self.head, "keyId": self.key_id, "reason": self.reason,
            "retainedFromSeq": self.retained_from_seq, "seq": self.seq, "time": self.time,
            "v": STATEMENT_VERSION,
        }).decode("ascii")

    @classmethod
    def from_statement(cls, text: str) -> "Checkpoint":
        """Parses a statement; raises ChainError when it is not one this version writes."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ChainError("checkpoint statement is not JSON") from None
        if not isinstance(data, dict) or data.get("v") != STATEMENT_VERSION:
            raise ChainError("checkpoint statement has an unknown version")
        try:
            checkpoint = cls(seq=data["seq"], head=data["head"], time=data["time"], reason=data["reason"],
                             retained_from_seq=data["retainedFromSeq"], key_id=data["keyId"])
        except KeyError as exc:
            raise ChainError(f"checkpoint statement lacks {exc.args[0]!r}") from None
        if (type(checkpoint.seq) is not int or type(checkpoint.retained_from_seq) is not int
                or not _is_sha256_hex(checkpoint.head) or not isinstance(checkpoint.time, str)
                or checkpoint.reason not in REASONS or not isinstance(checkpoint.key_id, str)):
            raise ChainError("checkpoint statement has a malformed field")
        if checkpoint.statement() != text:
            raise ChainError("checkpoint statement is not in canonical form")
        return checkpoint


def checkpoint_record(checkpoint: Checkpoint, signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    """An Event-shaped, signed checkpoint record, not yet linked into the chain."""
    statement = checkpoint.statement()
    signature = base64.b64encode(signing_key.sign(statement.encode("ascii"))).decode("ascii")
    return {
        "kind": "Event",
        "apiVersion": API_VERSION,
        "level": LEVEL_METADATA,
        "auditID": str(uuid.uuid4()),
        "stage": STAGE_RESPONSE_COMPLETE,
        "requestURI": CHECKPOINT_URI,
        "verb": CHECKPOINT_VERB,
        "user": {"username": CHECKPOINT_USER},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": checkpoint.time,
        "stageTimestamp": checkpoint.time,
        "annotations": {CHECKPOINT: statement, SIGNATURE: signature},
    }


def read_checkpoint(record: dict[str, Any], public_key: Ed25519PublicKey) -> Checkpoint:
    """The statement of a checkpoint record whose signature verifies; raises ChainError otherwise."""
    annotations = record.get("annotations") or {}
    statement, signature = annotations.get(CHECKPOINT), annotations.get(SIGNATURE)
    if not isinstance(statement, str) or not isinstance(signature, str):
        raise ChainError("checkpoint without a statement or signature")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ChainError("checkpoint signature is not base64") from None
    try:
        public_key.verify(raw_signature, statement.encode("utf-8"))
    except InvalidSignature:
        raise ChainError("checkpoint signature does not verify (forged, edited, or signed by another key)") from None
    return Checkpoint.from_statement(statement)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None
