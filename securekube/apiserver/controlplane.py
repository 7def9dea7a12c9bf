"""The control plane assembled: storage, encryption, registry, authn/authz, controllers and the app.

`ControlPlane` wires the parts together and owns their background threads; `serve()` runs it
behind uvicorn with the hardened TLS context until SIGINT/SIGTERM.
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import uvicorn

from securekube.api.errors import ApiError
from securekube.apiserver.app import create_app
from securekube.apiserver.chain import build_handler_chain
from securekube.apiserver.encryption import ReloadingEncryption
from securekube.apiserver.handlers import ResourceHandlers
from securekube.apiserver.podlogs import PodLogs
from securekube.apiserver.rbac_writes import RbacWriteGuard
from securekube.apiserver.reviews import Reviews
from securekube.apiserver.serviceaccounts import ServiceAccountTokens
from securekube.apiserver.tls import CertReloader, ServingCerts, TLSExtensionProtocol, server_context
from securekube.authn.union import UnionAuthenticator
from securekube.authn.x509 import X509Authenticator
from securekube.audit.backends import AuditBackends
from securekube.audit.default_policy import default_policy
from securekube.audit.keys import load_or_create_audit_key
from securekube.audit.log import AuditLog
from securekube.audit.policy import AuditPolicy
from securekube.audit.webhook import WebhookSink, WebhookTarget
from securekube.authn.interfaces import UserInfo
from securekube.authz.bootstrap_policy import bootstrap_objects
from securekube.authz.node import InvalidPod, NodeAuthorizer
from securekube.authz.opa import OPAAuthorizer, OPAAuthorizerConfig
from securekube.authz.privileged import PrivilegedGroupAuthorizer
from securekube.authz.rbac import RBACAuthorizer
from securekube.authz.rules_review import self_subject_rules
from securekube.authz.union import UnionAuthorizer
from securekube.controllers.csr_approver import CsrApprover
from securekube.controllers.csr_signer import CsrSigner, SignerConfig
from securekube.controllers.namespace import NamespaceController
from securekube.controllers.node_lifecycle import NodeLifecycleConfig, NodeLifecycleController
from securekube.pki.certs import load_certificate
from securekube.pki.layout import PkiPaths
from securekube.pki.revocation import RevocationList
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyEngine, PolicyError
from securekube.policy.loader import read_policies
from securekube.policy.remote import RemoteEngine, RemoteEngineConfig
from securekube.admission.chain import standard_chain
from securekube.admission.noderestriction import NodeRestriction, NodeRestrictionLookups
from securekube.admission.opa import RegoAdmission, RegoAdmissionConfig
from securekube.admission.policy_objects import PolicyObjects
from securekube.admission.podsecurity import LevelVersion, NamespacePolicy, PodSecurityAdmission, PodSecurityConfig
from securekube.apiserver.admission_hook import Admission
from securekube.registry.informer import Informer
from securekube.registry.kinds.pods import bind_pod, binding_status
from securekube.registry.registry import Registry
from securekube.registry.store import Store
from securekube.scheduler.scheduler import Scheduler
from securekube.storage.sqlite import SqliteStorage

log = logging.getLogger("securekube.apiserver")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# The policies shipped in the repository's policies/ (an editable install, as the README sets up).
DEFAULT_POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
RELOAD_CHECK_SECONDS = 2.0
CACHE_CATCH_UP_SECONDS = 5.0
COMPACTION_INTERVAL_SECONDS = 300.0
# Policy decisions (authorization and admission) fail closed past this; the limit includes waiting
# for a free engine, so it must absorb queueing on a busy 2-core machine.
POLICY_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class ControlPlaneConfig:
    """Everything the API server needs, as explicit paths (the CLI maps a data dir onto them)."""

    database: Path
    encryption_config: Path
    pki_dir: Path
    serving: ServingCerts
    policies_dir: Path = DEFAULT_POLICIES_DIR
    audit_log: Path | None = None  # the JSON-lines audit log; None: <database dir>/audit/audit.log
    audit_policy: Path | None = None  # an audit.k8s.io/v1 Policy file; None: the shipped default
    audit_webhook: WebhookTarget | None = None  # also send audit events there (batched), e.g. a detection sidecar
    host: str = "127.0.0.1"
    port: int = 6443
    # Seconds without a lease renewal before a node is marked unreachable (upstream's
    # --node-monitor-grace-period, default 40 s).
    node_monitor_grace_period: float = 40.0
    # Evaluate admission policies on this OPA server (its REST API over TLS) instead of in-process.
    remote_opa: RemoteEngineConfig | None = None
    # Parameters of the shipped admission policies (policy name -> input.parameters).
    admission_parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class ControlPlane:
    def __init__(self, config: ControlPlaneConfig) -> None:
        self.config = config
        self.storage = SqliteStorage(config.database)
        self.encryption = ReloadingEncryption(config.encryption_config)
        self.registry = Registry(self.storage, self.encryption.transformer_for)
        pki = PkiPaths(config.pki_dir)
        self.revocations = RevocationList(pki, load_certificate(pki.cert("ca")))
        self.rbac = RBACAuthorizer()
        self._rbac_informers = {kind: Informer(self.registry.store_for_kind("rbac.authorization.k8s.io", kind),
                                               self._rbac_event(kind)) for kind in RBAC_KINDS}
        self.namespace_controller = NamespaceController(self.registry)
        # Joining nodes. The approver asks RBAC alone whether a requester may create
        # certificatesigningrequests/(self)nodeclient: the Node authorizer denies nodes every subresource.
        self.node_controllers = (CsrApprover(self.registry, self.rbac),
                                 CsrSigner(self.registry, SignerConfig(config.pki_dir)), Scheduler(self.registry),
                                 NodeLifecycleController(self.registry,
                                                         NodeLifecycleConfig(config.node_monitor_grace_period)))
        self.tokens = ServiceAccountTokens(self.registry, pki,
                                           jwks_uri=f"https://{config.host}:{config.port}/openid/v1/jwks")
        self.nodes = NodeAuthorizer()
        self._pod_informer = Informer(self.registry.store_for_kind("", "Pod"), self._pod_event, name="node-graph")
        # Two engines: admission replaces its whole module set on every policy change.
        # Admission may run on a remote OPA server instead (config.remote_opa); authorization stays in-process.
        self.policy_engine = EmbeddedOpaEngine()
        self.admission_engine: PolicyEngine = (RemoteEngine(config.remote_opa) if config.remote_opa is not None
                                               else EmbeddedOpaEngine())
        shipped = read_policies(config.policies_dir, self.policy_engine)
        policies = [p for p in shipped if p.is_authorization]
        self.policy_engine.load({p.module.module_name: p.module.source for p in policies})
        opa = OPAAuthorizer(self.policy_engine, policies, OPAAuthorizerConfig(eval_timeout=POLICY_TIMEOUT_SECONDS))
        opa.verify()  # every policy loaded and answering, or no start
        # Node → OPA → system:masters → RBAC: the first ALLOW or DENY decides and all abstaining is a
        # deny. OPA only denies, and comes before system:masters so its rules bind everyone.
        authorizer = UnionAuthorizer(self.nodes, opa, PrivilegedGroupAuthorizer(), self.rbac)
        reviews = Reviews(authorizer, self.tokens, rules_for=self._rules_review)
        rego = RegoAdmission(self.admission_engine, RegoAdmissionConfig(eval_timeout=POLICY_TIMEOUT_SECONDS))
        try:
            rego.set_policies([p for p in shipped if p.is_admission], config.admission_parameters)
        except ValueError as exc:  # e.g. parameters for a policy that does not exist: refuse to start
            raise PolicyError(f"admission parameters: {exc}") from None
        rego.verify()
        # ConstraintTemplates and Constraints stored as API objects join the shipped policies.
        self.policy_objects = PolicyObjects(self.registry, rego)
        self.policy_objects.sync()
        pods, nodes = self.registry.store_for_kind("", "Pod"), self.registry.store_for_kind("", "Node")
        chain = standard_chain(
            rego=rego, policy_objects=self.policy_objects,
            # The lab enforces the restricted Pod Security level wherever a namespace says nothing else.
            pod_security=PodSecurityAdmission(PodSecurityConfig(defaults=NamespacePolicy.uniform(LevelVersion("restricted"))),
                                              list_pods=lambda ns: pods.list(ns).items),
            node_restriction=NodeRestriction(NodeRestrictionLookups(get_pod=_getter(pods), get_node=lambda n: _getter(nodes)("", n))))
        admission = Admission(self.registry, chain, RbacWriteGuard(self.registry, self.rbac, authorizer))
        handlers = ResourceHandlers(self.registry, reviews, after_write=self._after_write,
                                    creators={("", "serviceaccounts", "token"): self.tokens.request,
                                              ("", "pods", "binding"): self._bind},
                                    admission=admission,
                                    serialize=lambda store: self.policy_objects.serialized(store.type.group))
        authenticator = UnionAuthenticator(X509Authenticator(lambda: self.revocations.serials),
                                           self.tokens)
        audit_policy = AuditPolicy.load(config.audit_policy) if config.audit_policy else default_policy()
        self.audit_log = AuditLog(config.audit_log or config.database.parent / "audit" / "audit.log",
                                  signing_key=load_or_create_audit_key(config.pki_dir))
        webhook = (WebhookSink(config.audit_webhook.url, config.audit_webhook.ssl_context)
                   if config.audit_webhook is not None else None)
        self.audit = AuditBackends(self.audit_log, webhook)
        app = PodLogs(create_app(handlers, ready=self.ready, oidc=self.tokens, metrics=self.audit.metrics),
                      self.registry, config.pki_dir)
        self.app = build_handler_chain(app,
                                       authenticator=authenticator, authorizer=authorizer,
                                       audit_policy=audit_policy, audit_sink=self.audit.submit)
        self._stopping = threading.Event()

    # -- caches -----------------------------------------------------------------------------
    def _rbac_event(self, kind: str) -> Callable[[str, dict], None]:
        def apply(event_type: str, obj: dict) -> None:
            if event_type == "SYNC":
                for item in obj["items"]:
                    self.rbac.apply(kind, item)
            elif event_type == "DELETED":
                meta = obj["metadata"]
                self.rbac.remove(kind, meta.get("namespace", ""), meta["name"])
            else:
                self.rbac.apply(kind, obj)
        return apply

    def _pod_event(self, event_type: str, obj: dict) -> None:
        """Keeps the Node authorizer's graph (which node may read what) in step with the pods."""
        if event_type == "DELETED":
            self.nodes.remove_pod(obj["metadata"]["namespace"], obj["metadata"]["name"])
            return
        for pod in obj["items"] if event_type == "SYNC" else [obj]:
            try:
                self.nodes.apply_pod(pod)
            except InvalidPod as exc:  # the graph then grants nothing for it: fail closed
                log.warning("pod %s/%s left out of the node graph: %s", pod["metadata"].get("namespace"),
                            pod["metadata"].get("name"), exc)

    def _bind(self, namespace: str, name: str, binding: Any, user: UserInfo) -> dict:
        """POST pods/NAME/binding; returns once the node graph knows the pod's node."""
        pods = self.registry.store_for_kind("", "Pod")
        bound = bind_pod(pods, namespace, name, binding)
        self._after_write(pods, int(bound["metadata"]["resourceVersion"]))
        return binding_status()

    def _rules_review(self, user: UserInfo, namespace: str) -> dict:
        reasons = [r for r in (self.nodes.rule_resolution_error(user),) if r]
        return self_subject_rules(self.rbac, user, namespace, incomplete_reasons=reasons)

    def _after_write(self, store: Store, revision: int) -> None:
        """A write that authorization or admission depends on returns only once they see it (read-your-writes)."""
        self.policy_objects.after_write(store.type.group)
        informer = next((i for i in self._informers() if i.store is store), None)
        if informer is not None and not informer.wait_for(revision, CACHE_CATCH_UP_SECONDS):
            log.warning("authorization cache for %s is behind revision %s", store.type.plural, revision)

    def _informers(self) -> list[Informer]:
        return [*self._rbac_informers.values(), self._pod_informer]

    def ready(self) -> bool:
        return all(i.synced for i in self._informers())

    # -- life cycle -------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Creates the default namespaces and the upstream bootstrap RBAC policy if missing."""
        namespaces = self.registry.store_for_kind("", "Namespace")
        for name in DEFAULT_NAMESPACES:
            self._create_if_missing(namespaces, "", {"metadata": {"name": name}})
        for obj in bootstrap_objects():
            store = self.registry.store_for_kind(obj["apiVersion"].split("/")[0], obj["kind"])
            self._create_if_missing(store, obj["metadata"].get("namespace", ""), obj)

    @staticmethod
    def _create_if_missing(store: Store, namespace: str, obj: dict) -> None:
        try:
            store.create(namespace, obj)
        except ApiError as exc:
            if exc.code != 409:
                raise

    def start(self) -> None:
        for informer in self._informers():
            informer.start()
        self.namespace_controller.start()
        for controller in self.node_controllers:
            controller.start()
        for informer in self._informers():
            if not informer.wait_synced(30):
                raise RuntimeError("the authorization caches did not sync; refusing to serve")

    def watch_files(self, reloaders: list[Any]) -> None:
        """Polls certificate and encryption-config files for changes in a background thread."""
        def loop() -> None:
            while not self._stopping.wait(RELOAD_CHECK_SECONDS):
                for reloader in reloaders:
                    reloader.check()
        threading.Thread(target=loop, name="file-reloader", daemon=True).start()

    def compact_periodically(self, interval: float = COMPACTION_INTERVAL_SECONDS) -> None:
        """Every interval, forgets history older than the revision seen one interval ago (upstream's rhythm),
        so watches can resume across a short disconnect but the log does not grow forever."""
        def loop() -> None:
            previous = self.storage.current_revision()
            while not self._stopping.wait(interval):
                current = self.storage.current_revision()
                try:
                    self.storage.compact(previous)
                except Exception:  # a failed compaction only delays the next one
                    log.exception("compaction to revision %s failed", previous)
                previous = current
        threading.Thread(target=loop, name="compactor", daemon=True).start()

    def close(self) -> None:
        self._stopping.set()
        self.namespace_controller.stop()
        for controller in self.node_controllers:
            controller.stop()
        for informer in self._informers():
            informer.stop()
        self.storage.close()
        self.policy_engine.close()
        self.admission_engine.close()
        self.audit.close()


def _getter(store: Store) -> Callable[[str, str], dict | None]:
    """A lookup that answers None for a missing object (what admission stages expect)."""
    def get(namespace: str, name: str) -> dict | None:
        try:
            return store.get(namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
    return get


def serve(config: ControlPlaneConfig, report: Callable[[str], None] = print,
          on_listening: Callable[[], None] = lambda: None, on_stopping: Callable[[], None] = lambda: None) -> None:
    """Runs the API server until SIGINT/SIGTERM, reporting each start-up step.

    `on_stopping` runs when a stop is asked for, before the server closes its connections (a local
    node ends its watches there, so the graceful shutdown need not wait them out).
    """
    report(f"storage: SQLite at {config.database}")
    plane = ControlPlane(config)
    try:
        report(f"encryption at rest: {config.encryption_config}")
        report(f"audit log: {plane.audit_log.path} (hash-chained, signed checkpoints)")
        if config.remote_opa is not None:
            report(f"admission policies: evaluated by the OPA server at {config.remote_opa.url}")
        if config.audit_webhook is not None:
            report(f"audit webhook: {config.audit_webhook.url} (batched; dropped events counted in /metrics)")
        plane.bootstrap()
        report("bootstrap: default namespaces and RBAC policy present")
        plane.start()
        ctx = server_context(config.serving)
        plane.watch_files([CertReloader(ctx, config.serving), plane.encryption, plane.revocations, plane.tokens])
        plane.compact_periodically()
        uv_config = uvicorn.Config(plane.app, host=config.host, port=config.port, http=TLSExtensionProtocol,
                                   lifespan="on", log_level="warning", access_log=False,
                                   timeout_graceful_shutdown=5)
        uv_config.load()
        uv_config.ssl = ctx  # our hardened context replaces uvicorn's default one
        server = uvicorn.Server(uv_config)
        listener = _listen(config.host, config.port)
        report(f"api server: listening on https://{config.host}:{config.port}")
        _run_until_signalled(server, listener, on_listening, on_stopping)
    finally:
        plane.close()
        report("stopped")


def _listen(host: str, port: int) -> socket.socket:
    """Binds the listening socket here, so a busy port is one clear OSError before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP,
    # and with Nagle on, a response's body waits for the client's delayed ACK of its headers (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _run_until_signalled(server: uvicorn.Server, listener: socket.socket, on_listening: Callable[[], None],
                         on_stopping: Callable[[], None] = lambda: None) -> None:
    """Serves in a worker thread; SIGINT/SIGTERM in the main thread ask for a graceful stop.

    uvicorn's own handlers would re-raise the signal after shutting down, so the process would
    die by the signal instead of exiting 0 after closing storage cleanly.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="uvicorn")
    thread.start()
    try:
        announced = False
        while thread.is_alive():
            if stop.wait(0.05):
                on_stopping()
                server.should_exit = True
                break
            if server.started and not announced:
                announced = True
                on_listening()
        thread.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise OSError(f"the API server did not start on {server.config.host}:{server.config.port}")
