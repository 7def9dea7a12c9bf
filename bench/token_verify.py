"""ServiceAccount token verification benchmark: latency of one authenticate() call, by hand.

Times ServiceAccountTokenAuthenticator.authenticate on pod-bound ES256 tokens (parse, algorithm
and kid checks, signature, claims, two uid lookups against an in-memory dict) and, interleaved
call by call, the bare ECDSA P-256 signature verification with `cryptography` that it cannot go
below. Each token is distinct (own jti), so nothing can be served from a cache. Prints p50/p90/
p99/max over all calls, the per-round p50/p99, and the median of per-round p50 ratios (full /
bare signature). Exit status 0 when every token verified; 1 when one did not (a broken build,
not a slow one: the latency target is reported, not enforced, because these machines are noisy).

    .venv/bin/python bench/token_verify.py [--count 5000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from securekube.authn.interfaces import Credentials
from securekube.authn.serviceaccount import BoundObject, ServiceAccountTokenAuthenticator, TokenIssuer, key_id

ISSUER = "https://kubernetes.default.svc.cluster.local"
TARGET_P99_MICROSECONDS = 200.0
WARMUP_CALLS = 300


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="timed verifications in all (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the count is split into (default 5)")
    args = parser.parse_args(argv)
    per_round = max(1, args.count // args.rounds)

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    issuer = TokenIssuer(key, key_id(key.public_key()), ISSUER, (ISSUER,), clock=lambda: now)
    uids = {("ServiceAccount", "bench", "runner"): "sa-uid", ("Pod", "bench", "runner-0"): "pod-uid"}
    authn = ServiceAccountTokenAuthenticator(
        {key_id(key.public_key()): key.public_key()}, ISSUER, (ISSUER,),
        lambda kind, ns, name: uids.get((kind, ns, name)), clock=lambda: now,
    )
    bound = BoundObject("Pod", "runner-0", "pod-uid")
    tokens = [issuer.issue("bench", "runner", "sa-uid", bound=bound)[0] for _ in range(per_round * args.rounds + WARMUP_CALLS)]
    credentials = [Credentials((), f"Bearer {t}") for t in tokens]
    bare_inputs = [_bare_signature_input(t) for t in tokens]
    public_key = key.public_key()

    def bare_verify(i: int) -> None:
        message, der_signature = bare_inputs[i]
        public_key.verify(der_signature, message, ec.ECDSA(hashes.SHA256()))

    for i in range(WARMUP_CALLS):
        authn.authenticate(credentials[i])
        bare_verify(i)

    full_all: list[float] = []
    bare_all: list[float] = []
    round_lines: list[str] = []
    ratios: list[float] = []
    clock_ns = time.perf_counter_ns
    for r in range(args.rounds):
        full: list[float] = []
        bare: list[float] = []
        start_index = WARMUP_CALLS + r * per_round
        for i in range(start_index, start_index + per_round):
            # Alternating call by call puts both measurements under the same machine noise.
            t0 = clock_ns()
            user = authn.authenticate(credentials[i])
            t1 = clock_ns()
            bare_verify(i)
            t2 = clock_ns()
            if user is None or user.username != "system:serviceaccount:bench:runner":
                print(f"token {i} did not verify: {user!r}", file=sys.stderr)
                return 1
            full.append((t1 - t0) / 1000)
            bare.append((t2 - t1) / 1000)
        full.sort()
        bare.sort()
        ratios.append(statistics.median(full) / statistics.median(bare))
        round_lines.append(
            f"  round {r + 1}: authenticate p50 {statistics.median(full):6.1f} µs  p99 {percentile(full, 0.99):6.1f} µs"
            f" | bare signature p50 {statistics.median(bare):6.1f} µs"
        )
        full_all.extend(full)
        bare_all.extend(bare)

    full_all.sort()
    bare_all.sort()
    p99 = percentile(full_all, 0.99)
    print(f"ServiceAccount token verification, {len(full_all)} calls in {args.rounds} rounds "
          f"(+{WARMUP_CALLS} warm-up), {os.cpu_count()} CPU, Python {platform.python_version()}")
    for label, values in (("authenticate()", full_all), ("bare ES256 verify", bare_all)):
        print(f"{label:>18}: p50 {percentile(values, 0.50):6.1f} µs  p90 {percentile(values, 0.90):6.1f} µs"
              f"  p99 {percentile(values, 0.99):6.1f} µs  max {values[-1]:7.1f} µs")
    print(*round_lines, sep="\n")
    print(f"median per-round ratio authenticate/bare (p50): {statistics.median(ratios):.2f}")
    verdict = "met" if p99 <= TARGET_P99_MICROSECONDS else "MISSED"
    print(f"target p99 <= {TARGET_P99_MICROSECONDS:.0f} µs: {verdict} ({p99:.1f} µs)")
    return 0


def _bare_signature_input(token: str) -> tuple[bytes, bytes]:
    """The signing input and DER signature of a token, decoded outside the timed region."""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return f"{header}.{payload}".encode(), der


if __name__ == "__main__":
    sys.exit(main())
