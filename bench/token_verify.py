"""ServiceAccount token verification benchmark: latency of one authenticate() call, by hand.

Times ServiceAccountTokenAuthenticator.authenticate on pod-bound ES256 tokens in two settings,
interleaved call by call with the bare ECDSA P-256 signature check (`cryptography`) that a cold
call cannot go below:

- cold: the verified-token cache is off and every token is new, so every call parses, checks
  algorithm and kid, verifies the signature and the claims, and looks up the ServiceAccount and
  the pod (in-memory dict);
- warm: the default cache and 100 tokens in turn (100 pods, each sending its token on every
  request), so the signature verdict is remembered and times and lookups are still checked.

Prints p50/p90/p99/max over all calls, per-round p50/p99 and the median of per-round p50 ratios
against the bare signature check. Exit status 0 when every token verified; 1 when one did not (a
broken build, not a slow one: the latency target is reported, not enforced, as machines are noisy).

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
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from securekube.authn.interfaces import Credentials
from securekube.authn.serviceaccount import BoundObject, ServiceAccountTokenAuthenticator, TokenIssuer, key_id

ISSUER = "https://kubernetes.default.svc.cluster.local"
USERNAME = "system:serviceaccount:bench:runner"
TARGET_P99_MICROSECONDS = 200.0
WARMUP_CALLS = 300
WARM_TOKENS = 100


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="timed calls per setting in all (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the count is split into (default 5)")
    args = parser.parse_args(argv)
    per_round = max(1, args.count // args.rounds)

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    issuer = TokenIssuer(key, key_id(key.public_key()), ISSUER, (ISSUER,), clock=lambda: now)
    uids = {("ServiceAccount", "bench", "runner"): "sa-uid", ("Pod", "bench", "runner-0"): "pod-uid"}

    def authenticator(cache_size: int) -> ServiceAccountTokenAuthenticator:
        return ServiceAccountTokenAuthenticator(
            {key_id(key.public_key()): key.public_key()}, ISSUER, (ISSUER,),
            lambda kind, ns, name: uids.get((kind, ns, name)), clock=lambda: now, verified_cache_size=cache_size,
        )

    cold, warm = authenticator(0), authenticator(4096)
    bound = BoundObject("Pod", "runner-0", "pod-uid")
    tokens = [issuer.issue("bench", "runner", "sa-uid", bound=bound)[0] for _ in range(per_round * args.rounds + WARMUP_CALLS)]
    credentials = [Credentials((), f"Bearer {t}") for t in tokens]
    bare_inputs = [_bare_signature_input(t) for t in tokens]
    public_key = key.public_key()

    def bare_verify(i: int) -> None:
        message, der_signature = bare_inputs[i]
        public_key.verify(der_signature, message, ec.ECDSA(hashes.SHA256()))

    settings: dict[str, Callable[[int], object]] = {
        "cold authenticate()": lambda i: cold.authenticate(credentials[i]),
        "warm authenticate()": lambda i: warm.authenticate(credentials[i % WARM_TOKENS]),
        "bare ES256 verify": bare_verify,
    }
    for i in range(WARMUP_CALLS):
        for call in settings.values():
            call(i)

    timings: dict[str, list[float]] = {label: [] for label in settings}
    round_lines: list[str] = []
    ratios: dict[str, list[float]] = {"cold authenticate()": [], "warm authenticate()": []}
    clock_ns = time.perf_counter_ns
    for r in range(args.rounds):
        this_round: dict[str, list[float]] = {label: [] for label in settings}
        start_index = WARMUP_CALLS + r * per_round
        for i in range(start_index, start_index + per_round):
            # Alternating call by call puts all settings under the same machine noise.
            for label, call in settings.items():
                t0 = clock_ns()
                result = call(i)
                elapsed = (clock_ns() - t0) / 1000
                if label != "bare ES256 verify" and getattr(result, "username", None) != USERNAME:
                    print(f"{label}: token {i} did not verify: {result!r}", file=sys.stderr)
                    return 1
                this_round[label].append(elapsed)
        for values in this_round.values():
            values.sort()
        bare_p50 = statistics.median(this_round["bare ES256 verify"])
        for label in ratios:
            ratios[label].append(statistics.median(this_round[label]) / bare_p50)
        round_lines.append(f"  round {r + 1}: " + " | ".join(
            f"{label.split()[0]} p50 {statistics.median(v):6.1f} p99 {percentile(v, 0.99):6.1f}"
            for label, v in this_round.items()
        ) + " (µs)")
        for label, values in this_round.items():
            timings[label].extend(values)

    print(f"ServiceAccount token verification: {args.rounds} rounds x {per_round} calls per setting "
          f"(+{WARMUP_CALLS} warm-up), {os.cpu_count()} CPU, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    for label, values in timings.items():
        values.sort()
        print(f"{label:>20}: p50 {percentile(values, 0.50):6.1f} µs  p90 {percentile(values, 0.90):6.1f} µs"
              f"  p99 {percentile(values, 0.99):6.1f} µs  max {values[-1]:8.1f} µs")
    print(*round_lines, sep="\n")
    for label, values in ratios.items():
        print(f"median per-round p50 ratio {label} / bare ES256 verify: {statistics.median(values):.2f}")
    for label in ratios:
        p99 = percentile(timings[label], 0.99)
        verdict = "met" if p99 <= TARGET_P99_MICROSECONDS else "MISSED"
        print(f"target p99 <= {TARGET_P99_MICROSECONDS:.0f} µs, {label}: {verdict} ({p99:.1f} µs)")
    return 0


def _bare_signature_input(token: str) -> tuple[bytes, bytes]:
    """The signing input and DER signature of a token, decoded outside the timed region."""
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return f"{header}.{payload}".encode(), der


if __name__ == "__main__":
    sys.exit(main())
