"""The FastAPI application behind the handler chain: health, version, discovery and resources."""
from __future__ import annotations

import contextlib
import logging
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, AsyncIterator

import anyio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from securekube import __version__
from securekube.api import errors
from securekube.api.errors import ApiError
from securekube.api.selectors import FieldRequirement
from securekube.apiserver import discovery, openapi
from securekube.apiserver.admission_hook import Notes
from securekube.apiserver.handlers import Request as ApiRequest
from securekube.apiserver.handlers import ResourceHandlers, encode, list_options
from securekube.apiserver.negotiation import check_acceptable, wants_table
from securekube.apiserver.watch import stream_watch
from securekube.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from securekube.metrics import Metric
from securekube.metrics import render as render_metrics

log = logging.getLogger("securekube.apiserver")
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024  # upstream's limit
WORKER_THREADS = 256
KUBERNETES_VERSION = (1, 37, 0)  # the API level we follow; kubectl warns on a skew above one minor


def version_info() -> dict[str, str]:
    major, minor, patch = KUBERNETES_VERSION
    return {"major": str(major), "minor": str(minor), "gitVersion": f"v{major}.{minor}.{patch}+securekube.{__version__}",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "cpython",
            "platform": "linux/amd64"}


def warning_header(warnings: list[str]) -> str:
    """RFC 7234 warn-code 299 with each text as a quoted-string, as upstream sends them."""
    quoted = (w.replace("\\", "\\\\").replace('"', '\\"') for w in warnings)
    return ", ".join(f'299 - "{w}"' for w in quoted)


def status_response(error: ApiError) -> Response:
    return Response(encode(error.status()), status_code=error.code, media_type="application/json")


async def read_body(request: Request, limit: int = MAX_REQUEST_BODY_BYTES) -> bytes:
    """Reads the body, refusing (413) as soon as it passes the limit, before it is all buffered."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Every watch holds a worker thread while it waits for events; anyio's default of 40 is too few.
    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
    yield


def create_app(handlers: ResourceHandlers, *, ready: Any = lambda: True, oidc: Any = None,
               metrics: Callable[[], Iterable[Metric]] = tuple) -> FastAPI:
    """The application; the caller wraps it in the handler chain (see chain.py).

    `metrics` gives what GET /metrics shows (the chain has authorized `get` on that path).
    """
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    catalog = handlers.registry.catalog

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return status_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # The type only: an exception message could carry request data (a secret).
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return status_response(errors.internal("an unexpected error occurred; see the server log"))

    @app.get("/livez")
    @app.get("/healthz")
    async def livez() -> Response:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        if not ready():
            return PlainTextResponse("not ready", status_code=503)
        return PlainTextResponse("ok")

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(render_metrics(metrics()), media_type=METRICS_CONTENT_TYPE)

    @app.get("/version")
    async def version() -> Response:
        return JSONResponse(version_info())

    def json_or_404(doc: dict | None) -> Response:
        if doc is None:
            return status_response(errors.no_such_resource())
        return Response(encode(doc), media_type="application/json")

    def discovery_response(request: Request, legacy: dict | None, core: bool) -> Response:
        if discovery.wants_aggregated(request.headers.get("accept")):
            return Response(encode(discovery.aggregated(catalog, core)), media_type=discovery.AGGREGATED_V2)
        return json_or_404(legacy)

    @app.get("/api")
    async def api(request: Request) -> Response:
        return discovery_response(request, discovery.api_versions(), core=True)

    @app.get("/apis")
    async def apis(request: Request) -> Response:
        return discovery_response(request, discovery.api_group_list(catalog), core=False)

    @app.get("/api/{version}")
    async def core_version(version: str) -> Response:
        doc = discovery.api_resource_list(catalog, "", version)
        return json_or_404(doc)

    @app.get("/apis/{group}")
    async def group_doc(group: str) -> Response:
        doc = discovery.api_group(catalog, group)
        return json_or_404(doc)

    @app.get("/apis/{group}/{version}")
    async def group_version(group: str, version: str) -> Response:
        doc = discovery.api_resource_list(catalog, group, version)
        return json_or_404(doc)

    if oidc is not None:
        @app.get("/.well-known/openid-configuration")
        async def openid_configuration() -> Response:
            return JSONResponse(oidc.openid_configuration())

        @app.get("/openid/v1/jwks")
        async def openid_jwks() -> Response:
            return Response(encode(oidc.jwks()), media_type="application/jwk-set+json")

    @app.get("/openapi/v3")
    async def openapi_root() -> Response:
        return json_or_404(openapi.root_document(catalog))

    @app.get("/openapi/v3/api/{version}")
    async def openapi_core(version: str) -> Response:
        return json_or_404(openapi.group_version_document(catalog, "", version))

    @app.get("/openapi/v3/apis/{group}/{version}")
    async def openapi_group(group: str, version: str) -> Response:
        return json_or_404(openapi.group_version_document(catalog, group, version))

    @app.api_route("/api/{version}/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @app.api_route("/apis/{group}/{version}/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def resources(request: Request) -> Response:
        info = request.scope["securekube.request_info"]
        check_acceptable(request.headers.get("accept"))
        query = dict(request.query_params)
        if info.verb == "watch":
            return await watch_response(request, info, query)
        body = await read_body(request)
        notes = Notes()
        request.scope["securekube.audit_annotations"] = notes.audit_annotations  # read by the audit stage
        req = ApiRequest(info, query, request.headers.get("content-type"), request.headers.get("accept"), body,
                         request.scope["securekube.user"], notes)
        try:
            reply = await run_in_threadpool(handlers.handle, req)
        except ApiError as exc:  # a denial still carries the warnings gathered before it, as upstream
            response = status_response(exc)
            if notes.warnings:
                response.headers["Warning"] = warning_header(notes.warnings)
            return response
        warnings = reply.warnings + notes.warnings
        headers = {"Warning": warning_header(warnings)} if warnings else None
        return Response(encode(reply.body), status_code=reply.status, media_type="application/json", headers=headers)

    async def watch_response(request: Request, info: Any, query: dict[str, str]) -> Response:
        store = handlers.store_for(info)
        namespace = info.namespace if store.type.namespaced else ""
        opts = list_options(store, query)
        if info.name:  # a watch of one object is a watch with a name field selector, as upstream
            opts = dataclasses.replace(
                opts, field_selector=opts.field_selector + (FieldRequirement("metadata.name", True, info.name),))
        timeout = query.get("timeoutSeconds", "")
        stream = stream_watch(store, namespace, query.get("resourceVersion", ""), opts,
                              timeout_seconds=int(timeout) if timeout.isdigit() else 0,
                              bookmarks=query.get("allowWatchBookmarks") in ("true", "1"),
                              table=wants_table(request.headers.get("accept")),
                              include_object=query.get("includeObject", "Metadata"),
                              send_initial_events=query.get("sendInitialEvents") == "true")
        return StreamingResponse(stream, media_type="application/json")

    return app
