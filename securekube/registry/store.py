"""The generic store: create/get/list/update/delete/watch for any kind, with Kubernetes semantics.

One `Store` per kind, on top of the `Storage` interface and that kind's value `Transformer`
(encryption at rest). Objects are stored as JSON without `resourceVersion`; the key's
mod_revision is the resourceVersion, as upstream's etcd3 store does. Every write is a
compare-and-swap, so a concurrent writer never loses an update.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets as pysecrets
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from securekube.api import errors
from securekube.api.errors import ApiError
from securekube.api.selectors import FieldRequirement, Requirement, fields_match, labels_match
from securekube.registry.resource import Strategy, validate_metadata
from securekube.storage import interfaces as st

# Upstream's generateName alphabet: no vowels (no words) and no confusable characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_CONFLICT_RETRIES = 16
GENERATE_NAME_ATTEMPTS = 8


# Admission for one write: (object to write or None for a delete, stored object or None) -> the
# object to write (possibly changed); raises an ApiError to refuse.
Admit = Callable[["dict | None", "dict | None"], "dict | None"]


class ValueTransformer(Protocol):
    """The encryption-at-rest transformer for one resource (see storage/transform)."""

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes: ...

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]: ...


def now_rfc3339(clock: Callable[[], dt.datetime]) -> str:
    return clock().astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ListOptions:
    label_selector: tuple[Requirement, ...] = ()
    field_selector: tuple[FieldRequirement, ...] = ()
    limit: int = 0
    continue_token: str = ""


@dataclass(frozen=True)
class ListResult:
    items: list[dict]
    resource_version: str
    continue_token: str


@dataclass(frozen=True)
class WatchedEvent:
    type: str  # ADDED, MODIFIED, DELETED
    object: dict


def _encode_continue(revision: int, key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data.get("v") != "meta.k8s.io/v1" or not isinstance(data.get("rv"), int) or not isinstance(data.get("start"), str):
            raise ValueError
        return data["rv"], data["start"]
    except (ValueError, binascii.Error, AttributeError, UnicodeDecodeError):
        raise errors.bad_request("continue key is not valid: the continue token is malformed") from None


class Store:
    """CRUD and watch for one kind."""

    def __init__(self, storage: st.Storage, strategy: Strategy, transformer: ValueTransformer,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.storage = storage
        self.strategy = strategy
        self.type = strategy.type
        self.transformer = transformer
        self.clock = clock

    # -- encoding ---------------------------------------------------------------------------
    def _decode(self, kv: st.KeyValue) -> dict:
        from securekube.storage.transform.interfaces import DecryptionError

        try:
            plaintext, _stale = self.transformer.from_storage(kv.value, kv.key.encode())
        except DecryptionError as exc:
            # The message names provider and key, never the key material or the plaintext.
            raise errors.internal(f"unable to transform key {kv.key!r}: {exc}") from None
        try:
            obj = json.loads(plaintext)
        except ValueError:
            raise errors.internal(f"stored value at {kv.key!r} is not a valid object") from None
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    def _encode(self, obj: dict, key: str) -> bytes:
        body = dict(obj)
        body["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
        plaintext = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return self.transformer.to_storage(plaintext, key.encode())

    def _key(self, namespace: str, name: str) -> str:
        return self.type.storage_key(namespace, name)

    def _not_found(self, name: str) -> ApiError:
        return errors.not_found(self.type.plural, name, self.type.group)

    def _stamp_kind(self, obj: dict) -> dict:
        obj["apiVersion"] = self.type.api_version
        obj["kind"] = self.type.kind
        return obj

    # -- validation -------------------------------------------------------------------------
    def _default(self, obj: dict) -> None:
        """Applies defaults; on a malformed object (wrong types) validation explains what is wrong."""
        try:
            self.strategy.default(obj)
        except (TypeError, AttributeError, ValueError, KeyError):
            self._validate(obj, None)
            name = (obj.get("metadata") or {}).get("name", "")
            raise errors.invalid(self.type.kind, name, [errors.Cause("FieldValueInvalid", "Invalid value: the object has fields of the wrong type", "")], self.type.group) from None

    def _validate(self, obj: dict, old: dict | None, subresource: str = "") -> None:
        try:
            causes = validate_metadata(obj, self.type.namespaced, self.strategy.name_check)
            causes += self.strategy.validate(obj)
            if old is not None and subresource:
                causes += self.strategy.validate_subresource_update(obj, old, subresource)
            elif old is not None:
                causes += self.strategy.validate_update(obj, old)
        except (TypeError, AttributeError, ValueError, KeyError):
            # A field of the wrong type that a kind's rules did not anticipate: still the client's
            # mistake (422), and the message names no value, since it could be a secret.
            causes = [errors.Cause("FieldValueTypeInvalid", "Invalid value: the object has fields of the wrong type", "")]
        if causes:
            name = (obj.get("metadata") or {}).get("name") or (obj.get("metadata") or {}).get("generateName", "")
            raise errors.invalid(self.type.kind, name, causes, self.type.group)

    # -- reads ------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> dict:
        kv = self.storage.get(self._key(namespace, name))
        if kv is None:
            raise self._not_found(name)
        return self._decode(kv)

    def list(self, namespace: str, opts: ListOptions = ListOptions()) -> ListResult:
        prefix = self.type.storage_prefix(namespace)
        revision, start_after = 0, ""
        if opts.continue_token:
            revision, start_after = _decode_continue(opts.continue_token)
            if not start_after.startswith(prefix):
                raise errors.bad_request("continue key is not valid: it does not belong to this list")
        items: list[dict] = []
        # Selectors filter after reading, so keep reading pages until `limit` matches are found.
        while True:
            try:
                page = self.storage.range(prefix, limit=opts.limit + 1 if opts.limit else 0,
                                          start_after=start_after, revision=revision)
            except st.CompactedError:
                raise errors.gone("The provided continue parameter is too old to display a consistent list result. "
                                  "You can start a new list without the continue parameter.") from None
            revision = page.revision
            for kv in page.kvs:
                obj = self._decode(kv)
                if self._matches(obj, opts):
                    items.append(obj)
                start_after = kv.key
                if opts.limit and len(items) == opts.limit:
                    more = kv is not page.kvs[-1] or page.more
                    return ListResult(items, str(revision), _encode_continue(revision, kv.key) if more else "")
            if not page.more:
                return ListResult(items, str(revision), "")

    def _matches(self, obj: dict, opts: ListOptions) -> bool:
        return (labels_match(opts.label_selector, (obj.get("metadata") or {}).get("labels"))
                and fields_match(opts.field_selector, obj, self.strategy.field_selectors))

    # -- writes -----------------------------------------------------------------------------
    def create(self, namespace: str, obj: dict, *, dry_run: bool = False, requester: Any = None,
               admit: Admit | None = None) -> dict:
        """Creates the object. `requester` (the authenticated `UserInfo`) is recorded by kinds that keep it
        (see Strategy). `admit(new, None)` (admission) sees it after defaulting and validation and returns
        the object to store, possibly changed (then validated again), or raises to refuse."""
        obj = self._stamp_kind(dict(obj))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.invalid(self.type.kind, "", [errors.Cause("FieldValueTypeInvalid", "must be an object", "metadata")])
        if self.type.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        generated = not meta.get("name") and bool(meta.get("generateName"))
        if generated and not isinstance(meta["generateName"], str):
            raise errors.invalid(self.type.kind, "", [errors.Cause(
                "FieldValueTypeInvalid", "Invalid value: must be a string", "metadata.generateName")], self.type.group)
        for system_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(system_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        # A generated name that happens to exist is drawn again, as upstream does since 1.32.
        for attempt in range(GENERATE_NAME_ATTEMPTS if generated else 1):
            if generated:
                meta["name"] = meta["generateName"] + "".join(pysecrets.choice(_NAME_ALPHABET) for _ in range(5))
            if attempt == 0:
                self.strategy.prepare_create(obj)
                if requester is not None:
                    self.strategy.record_requester(obj, requester)
                self._default(obj)
                self._validate(obj, None)
                obj = self._admitted(admit, obj, None)
                meta = obj["metadata"]
            key = self._key(namespace, meta["name"])
            if dry_run:
                if self.storage.get(key) is None:  # a dry run answers what the real create would
                    return obj
                continue
            try:
                kv = self.storage.create(key, self._encode(obj, key))
            except st.KeyExistsError:
                continue
            meta["resourceVersion"] = str(kv.mod_revision)
            return obj
        raise errors.already_exists(self.type.plural, meta["name"], self.type.group)

    def update(self, namespace: str, name: str, obj: dict, *, subresource: str = "", dry_run: bool = False,
               admit: Admit | None = None) -> dict:
        """A PUT: the body replaces the object; its resourceVersion, if set, must be current."""
        if not isinstance(obj.get("metadata"), dict):
            raise errors.bad_request("the object has no metadata")
        if obj["metadata"].get("name") != name:
            raise errors.bad_request(f"the name of the object ({obj['metadata'].get('name')}) does not match the name on the URL ({name})")
        wanted_rv = obj["metadata"].get("resourceVersion") or ""
        return self.guaranteed_update(namespace, name, lambda _current: obj, subresource=subresource,
                                      dry_run=dry_run, expected_rv=wanted_rv, admit=admit)

    def guaranteed_update(self, namespace: str, name: str, mutate: Callable[[dict], dict], *, subresource: str = "",
                          dry_run: bool = False, expected_rv: str = "", admit: Admit | None = None) -> dict:
        """Reads, applies `mutate`, validates and compare-and-swaps; retries on a race unless `expected_rv` pins it."""
        key = self._key(namespace, name)
        for _ in range(MAX_CONFLICT_RETRIES):
            kv = self.storage.get(key)
            if kv is None:
                raise self._not_found(name)
            old = self._decode(kv)
            if expected_rv and expected_rv != str(kv.mod_revision):
                raise errors.conflict(self.type.plural, name, errors.STALE_OBJECT, self.type.group)
            new = self._prepare_update(mutate(json.loads(json.dumps(old))), old, subresource)
            new = self._admitted(admit, new, old)
            if new == old:
                return old  # a no-op write does not bump resourceVersion, as upstream
            if dry_run:
                return new
            if self._finalized(new):
                return self._remove(key, kv, new)
            try:
                stored = self.storage.update(key, self._encode(new, key), kv.mod_revision)
            except st.KeyNotFoundError:
                raise self._not_found(name) from None
            except st.ConflictError:
                if expected_rv:
                    raise errors.conflict(self.type.plural, name, errors.STALE_OBJECT, self.type.group) from None
                continue
            new["metadata"]["resourceVersion"] = str(stored.mod_revision)
            return new
        raise errors.conflict(self.type.plural, name, "too many concurrent writers; try again", self.type.group)

    def _prepare_update(self, new: dict, old: dict, subresource: str) -> dict:
        new = self._stamp_kind(new)
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            raise errors.bad_request("the object has no metadata")
        old_meta = old["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            raise errors.conflict(self.type.plural, old_meta["name"],
                                  f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta.get('uid')}",
                                  self.type.group)
        if meta.get("name") != old_meta.get("name"):
            raise errors.bad_request("metadata.name cannot be changed")
        # System-owned fields always come from the stored object.
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if subresource in self.strategy.status_subresources:
            # A status update may change status only (and metadata only through the main resource).
            new["metadata"] = dict(old_meta)
        self.strategy.prepare_update(new, old, subresource)
        self._default(new)
        if old_meta.get("deletionTimestamp"):
            old_finalizers = set(old_meta.get("finalizers") or [])
            added = [f for f in meta.get("finalizers") or [] if f not in old_finalizers]
            if added:
                found = ", ".join(json.dumps(f) for f in added)
                raise errors.invalid(self.type.kind, old_meta["name"], [errors.Cause(
                    "FieldValueForbidden", "Forbidden: no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers []string{{{found}}}", "metadata.finalizers")], self.type.group)
        self._validate(new, old, subresource)
        return new

    def _admitted(self, admit: Admit | None, new: dict, old: dict | None) -> dict:
        if admit is None:
            return new
        admitted = admit(new, old)
        if admitted is not None and admitted != new:
            self._validate(admitted, old)  # a mutation must leave a valid object
            return admitted
        return new

    def _finalized(self, obj: dict) -> bool:
        """True when an object being deleted has no finalizer left and no grace period to wait out: it goes now."""
        meta = obj["metadata"]
        return (bool(meta.get("deletionTimestamp")) and not self.strategy.pending_finalizers(obj)
                and not meta.get("deletionGracePeriodSeconds"))

    def _remove(self, key: str, kv: st.KeyValue, obj: dict) -> dict:
        try:
            deleted = self.storage.delete(key, kv.mod_revision)
        except st.KeyNotFoundError:
            raise self._not_found(obj["metadata"]["name"]) from None
        except st.ConflictError:
            raise errors.conflict(self.type.plural, obj["metadata"]["name"], errors.STALE_OBJECT, self.type.group) from None
        obj["metadata"]["resourceVersion"] = str(deleted.mod_revision)
        return obj

    def delete(self, namespace: str, name: str, *, uid: str = "", resource_version: str = "",
               grace_period: int | None = None, dry_run: bool = False,
               admit: Admit | None = None) -> tuple[dict, bool]:
        """Deletes now, or marks the object for deletion while finalizers remain. Returns (object, gone)."""
        key = self._key(namespace, name)
        for _ in range(MAX_CONFLICT_RETRIES):
            kv = self.storage.get(key)
            if kv is None:
                raise self._not_found(name)
            obj = self._decode(kv)
            meta = obj["metadata"]
            if uid and uid != meta.get("uid"):
                raise errors.conflict(self.type.plural, name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid')}", self.type.group)
            if resource_version and resource_version != str(kv.mod_revision):
                raise errors.conflict(self.type.plural, name, f"Precondition failed: ResourceVersion in precondition: {resource_version}, ResourceVersion in object meta: {kv.mod_revision}", self.type.group)
            if admit is not None:
                admit(None, obj)
            graceful = self.strategy.graceful(obj) and grace_period != 0
            if not self.strategy.pending_finalizers(obj) and not graceful:
                if dry_run:
                    return obj, True
                try:
                    return self._remove(key, kv, obj), True
                except ApiError as exc:
                    if exc.code == 409 and not resource_version:
                        continue
                    raise
            if meta.get("deletionTimestamp"):
                return obj, False  # already being deleted: nothing changes
            meta["deletionTimestamp"] = now_rfc3339(self.clock)
            meta["deletionGracePeriodSeconds"] = (
                (grace_period if grace_period is not None else self.strategy.default_grace_period(obj)) if graceful else 0)
            self.strategy.on_delete_requested(obj)
            if dry_run:
                return obj, False
            try:
                stored = self.storage.update(key, self._encode(obj, key), kv.mod_revision)
            except (st.ConflictError, st.KeyNotFoundError):
                continue
            meta["resourceVersion"] = str(stored.mod_revision)
            return obj, False
        raise errors.conflict(self.type.plural, name, "too many concurrent writers; try again", self.type.group)

    # -- watch ------------------------------------------------------------------------------
    def watch(self, namespace: str, resource_version: str, opts: ListOptions = ListOptions(),
              send_initial_events: bool = False) -> "StoreWatch":
        """Changes after `resource_version`.

        "" or "0" (or `send_initial_events`, the watch-list protocol) first replays the current
        objects as ADDED; the caller marks the end of that replay with a bookmark.
        """
        initial: list[WatchedEvent] = []
        if resource_version in ("", "0") or send_initial_events:
            listed = self.list(namespace, ListOptions(opts.label_selector, opts.field_selector))
            initial = [WatchedEvent("ADDED", o) for o in listed.items]
            revision = int(listed.resource_version)
        else:
            try:
                revision = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resource version {resource_version!r}") from None
        try:
            watcher = self.storage.watch(self.type.storage_prefix(namespace), revision)
        except st.CompactedError:
            raise errors.gone(f"too old resource version: {revision}") from None
        return StoreWatch(self, watcher, opts, initial, revision)


class StoreWatch:
    """An open watch on one kind: storage events decoded, filtered and typed as the API sends them."""

    def __init__(self, store: Store, watcher: st.Watcher, opts: ListOptions, initial: list[WatchedEvent], revision: int) -> None:
        self._store, self._watcher, self._opts = store, watcher, opts
        self._pending = initial
        self.initial_revision = revision  # the revision the initial replay (if any) was read at
        self.revision = revision  # the newest revision delivered, for bookmarks
        self._filtered = bool(opts.label_selector or opts.field_selector)

    def take_initial(self) -> list[WatchedEvent]:
        """The replay of the current objects (once), without waiting for changes."""
        out, self._pending = self._pending, []
        return out

    def next(self, timeout: float) -> list[WatchedEvent]:
        if self._pending:
            out, self._pending = self._pending, []
            return out
        out = []
        for event in self._watcher.next(timeout):
            out.extend(self._translate(event))
            self.revision = max(self.revision, event.kv.mod_revision)
        return out

    def _translate(self, event: st.WatchEvent) -> Iterator[WatchedEvent]:
        store = self._store
        obj = store._decode(event.kv)
        if event.type == "DELETE":
            if not self._filtered or store._matches(obj, self._opts):
                yield WatchedEvent("DELETED", obj)
            return
        if not self._filtered:
            yield WatchedEvent("ADDED" if event.prev_kv is None else "MODIFIED", obj)
            return
        was = event.prev_kv is not None and store._matches(store._decode(event.prev_kv), self._opts)
        now = store._matches(obj, self._opts)
        if now:
            yield WatchedEvent("MODIFIED" if was else "ADDED", obj)
        elif was:
            yield WatchedEvent("DELETED", obj)

    def close(self) -> None:
        self._watcher.close()
