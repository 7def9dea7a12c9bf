"""The resource handlers: one function per verb, from a decoded request to a reply.

They run in a worker thread (storage calls block). Every failure is an ApiError that the
app turns into a Status; validation completes before any write, so a rejected request
stores nothing.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping

from securekube.api import errors, fieldcheck
from securekube.api.patch import json_merge_patch, json_patch, strategic_merge_patch
from securekube.api.selectors import parse_field_selector, parse_label_selector
from securekube.apiserver.negotiation import PATCH_TYPES, decode_body, media_type, to_table, wants_table
from securekube.apiserver.admission_hook import Admission, Notes
from securekube.apiserver.requestinfo import WRITE_VERBS, RequestInfo
from securekube.apiserver.reviews import Reviews
from securekube.authn.interfaces import UserInfo
from securekube.registry.registry import Registry
from securekube.registry.resource import ResourceType
from securekube.registry.store import Admit, ListOptions, Store

# (namespace, name, decoded body, requesting user) -> the created object, e.g. a TokenRequest.
SubresourceCreator = Callable[[str, str, Any, UserInfo], dict]



@dataclass
class Reply:
    status: int
    body: dict
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    info: RequestInfo
    query: Mapping[str, str]
    content_type: str | None
    accept: str | None
    body: bytes
    user: UserInfo
    notes: Notes = field(default_factory=Notes)  # admission's warnings and audit annotations


def _dry_run(query: Mapping[str, str], options: Mapping[str, Any] | None = None) -> bool:
    values = [query.get("dryRun", "")] + list((options or {}).get("dryRun") or [])
    for value in values:
        if value and value != "All":
            raise errors.bad_request(f'invalid dry run option {value!r}: supported values: "All"')
    return "All" in values


def _int_param(query: Mapping[str, str], name: str) -> int:
    raw = query.get(name, "")
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f"{name}: invalid value {raw!r}: must be an integer") from None
    if value < 0:
        raise errors.bad_request(f"{name}: invalid value {raw!r}: must be non-negative")
    return value


def list_options(store: Store, query: Mapping[str, str]) -> ListOptions:
    return ListOptions(
        label_selector=parse_label_selector(query.get("labelSelector")),
        field_selector=parse_field_selector(query.get("fieldSelector"), store.strategy.field_selectors),
        limit=_int_param(query, "limit"),
        continue_token=query.get("continue", ""),
    )


class ResourceHandlers:
    """Serves every kind in the registry; `after_write(revision)` lets caches catch up before replying."""

    def __init__(self, registry: Registry, reviews: Reviews,
                 after_write: Callable[[Store, int], None] = lambda s, r: None,
                 creators: Mapping[tuple[str, str, str], SubresourceCreator] | None = None,
                 admission: Admission | None = None,
                 serialize: Callable[[Store], ContextManager[object]] = lambda store: nullcontext()) -> None:
        """`creators` serve subresources that create something, by (group, resource, subresource);
        `admission` sees every object about to be written (with the stored one on updates and deletes);
        `serialize(store)` is held around each write to the store, from admission to `after_write`."""
        self._serialize = serialize
        self.registry = registry
        self._admission = admission
        self._reviews = reviews
        self._creators = dict(creators or {})
        self._after_write = after_write

    def store_for(self, info: RequestInfo) -> Store:
        store = self.registry.store(info.api_group, info.api_version, info.resource)
        if (store is None
                or (info.subresource and (info.subresource not in store.type.subresources or not info.name))
                or (store.type.namespaced and not info.namespace and (info.name or info.verb == "create"))):
            raise errors.no_such_resource()
        return store

    def handle(self, req: Request) -> Reply:
        info = req.info
        virtual = self.registry.catalog.virtual_type(info.api_group, info.api_version, info.resource)
        if virtual is not None:
            return self._review(virtual, req)
        store = self.store_for(info)
        namespace = info.namespace if store.type.namespaced else ""
        creator = self._creators.get((info.api_group, info.resource, info.subresource))
        if creator is not None:
            if info.verb != "create":
                raise errors.method_not_allowed()
            return Reply(201, creator(namespace, info.name, decode_body(req.body, req.content_type), req.user))
        verb = getattr(self, f"_{info.verb}", None)
        if verb is None:
            raise errors.method_not_allowed()
        if info.verb in WRITE_VERBS:
            with self._serialize(store):
                return verb(store, namespace, req)
        return verb(store, namespace, req)

    def _review(self, t: ResourceType, req: Request) -> Reply:
        info = req.info
        if info.verb != "create" or info.name or info.subresource or (t.namespaced and not info.namespace):
            raise errors.method_not_allowed()
        return Reply(201, self._reviews.create(t, info.namespace, decode_body(req.body, req.content_type), req.user))

    def _admit(self, store: Store, namespace: str, operation: str, req: Request, dry_run: bool) -> Admit | None:
        if self._admission is None:
            return None
        admission = self._admission
        return lambda new, old: admission.admit(store, namespace, operation, new, old, req.user,
                                                subresource=req.info.subresource, dry_run=dry_run, notes=req.notes)

    def _written(self, store: Store, obj: dict) -> None:
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._after_write(store, int(rv))

    # -- reads ------------------------------------------------------------------------------
    def _get(self, store: Store, namespace: str, req: Request) -> Reply:
        obj = store.get(namespace, req.info.name)
        if wants_table(req.accept):
            return Reply(200, to_table(store.strategy, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                       req.query.get("includeObject", "Metadata")))
        return Reply(200, obj)

    def _list(self, store: Store, namespace: str, req: Request) -> Reply:
        result = store.list(namespace, list_options(store, req.query))
        meta: dict[str, Any] = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if wants_table(req.accept):
            return Reply(200, to_table(store.strategy, result.items, meta, req.query.get("includeObject", "Metadata")))
        items = []
        for obj in result.items:
            item = dict(obj)
            item.pop("apiVersion", None)  # upstream omits the per-item type in a typed list
            item.pop("kind", None)
            items.append(item)
        return Reply(200, {"kind": store.type.list_kind, "apiVersion": store.type.api_version,
                           "metadata": meta, "items": items})

    # -- writes -----------------------------------------------------------------------------
    def _object_body(self, store: Store, namespace: str, req: Request) -> dict:
        obj = decode_body(req.body, req.content_type)
        if not isinstance(obj, dict):
            raise errors.bad_request("the request body must be a JSON or YAML object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != store.type.kind or api_version and api_version != store.type.api_version:
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API "
                                     f"version ({store.type.api_version})" if api_version != store.type.api_version
                                     else f"the kind in the data ({kind}) does not match the expected kind ({store.type.kind})")
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        body_ns = (meta or {}).get("namespace")
        if store.type.namespaced and body_ns and body_ns != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        return obj

    @staticmethod
    def _check_fields(store: Store, req: Request, body: Any) -> tuple[Any, list[str]]:
        """Unknown fields per `fieldValidation` (default Warn, as upstream): 400 when Strict, else dropped."""
        return fieldcheck.check(body, store.strategy.schema, req.query.get("fieldValidation") or "Warn")

    def _create(self, store: Store, namespace: str, req: Request) -> Reply:
        if req.info.name:
            raise errors.method_not_allowed()
        obj, warnings = self._check_fields(store, req, self._object_body(store, namespace, req))
        if store.type.namespaced:
            self.registry.check_namespace_accepts_content(namespace)
        dry_run = _dry_run(req.query)
        created = store.create(namespace, obj, dry_run=dry_run, requester=req.user,
                               admit=self._admit(store, namespace, "CREATE", req, dry_run))
        self._written(store, created)
        return Reply(201, created, warnings)

    def _update(self, store: Store, namespace: str, req: Request) -> Reply:
        obj, warnings = self._check_fields(store, req, self._object_body(store, namespace, req))
        dry_run = _dry_run(req.query)
        updated = store.update(namespace, req.info.name, obj, subresource=req.info.subresource, dry_run=dry_run,
                               admit=self._admit(store, namespace, "UPDATE", req, dry_run))
        self._written(store, updated)
        return Reply(200, updated, warnings)

    def _patch(self, store: Store, namespace: str, req: Request) -> Reply:
        patch_type = PATCH_TYPES.get(media_type(req.content_type))
        if patch_type is None or patch_type == "apply":
            raise errors.unsupported_media_type(media_type(req.content_type))
        patch = decode_body(req.body, req.content_type)
        warnings: list[str] = []
        if patch_type != "json":
            patch, warnings = self._check_fields(store, req, patch)
        apply = {"json": json_patch, "merge": json_merge_patch, "strategic": strategic_merge_patch}[patch_type]
        # A patch that carries a resourceVersion is a precondition, as upstream.
        expected_rv = ""
        if isinstance(patch, dict) and isinstance(patch.get("metadata"), dict):
            expected_rv = str(patch["metadata"].get("resourceVersion") or "")

        def mutate(current: dict) -> dict:
            patched = apply(current, patch)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not an object")
            return patched

        dry_run = _dry_run(req.query)
        updated = store.guaranteed_update(namespace, req.info.name, mutate, subresource=req.info.subresource,
                                          dry_run=dry_run, expected_rv=expected_rv,
                                          admit=self._admit(store, namespace, "UPDATE", req, dry_run))
        self._written(store, updated)
        return Reply(200, updated, warnings)

    def _delete_options(self, req: Request) -> dict:
        if not req.body:
            return {}
        options = decode_body(req.body, req.content_type)
        if not isinstance(options, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        return options

    def _delete(self, store: Store, namespace: str, req: Request) -> Reply:
        options = self._delete_options(req)
        pre = options.get("preconditions") or {}
        grace = options.get("gracePeriodSeconds", req.query.get("gracePeriodSeconds"))
        obj, _gone = store.delete(namespace, req.info.name, uid=pre.get("uid") or "",
                                  resource_version=pre.get("resourceVersion") or "",
                                  grace_period=int(grace) if grace not in (None, "") else None,
                                  dry_run=_dry_run(req.query, options),
                                  admit=self._admit(store, namespace, "DELETE", req, _dry_run(req.query, options)))
        self._written(store, obj)
        return Reply(200, obj)

    def _deletecollection(self, store: Store, namespace: str, req: Request) -> Reply:
        options = self._delete_options(req)
        dry_run = _dry_run(req.query, options)
        opts = list_options(store, req.query)
        deleted = []
        try:
            for obj in store.list(namespace, ListOptions(opts.label_selector, opts.field_selector)).items:
                try:
                    item_namespace = obj["metadata"].get("namespace", "")
                    gone, _ = store.delete(item_namespace, obj["metadata"]["name"], dry_run=dry_run,
                                           admit=self._admit(store, item_namespace, "DELETE", req, dry_run))
                except errors.ApiError as exc:
                    if exc.code == 404:
                        continue  # deleted by someone else meanwhile
                    raise
                deleted.append(gone)
        finally:  # what was deleted before a refusal is gone: caches must see it either way
            for obj in deleted[-1:]:
                self._written(store, obj)
        return Reply(200, {"kind": store.type.list_kind, "apiVersion": store.type.api_version,
                           "metadata": {}, "items": deleted})


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
