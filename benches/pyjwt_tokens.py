"""PyJWT sign/verify of the same claims Warden issues, for comparison with
`cargo bench --bench tokens`. Run with the test venv:

    .venv/bin/python benches/pyjwt_tokens.py
"""

from __future__ import annotations

import secrets
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": "warden",
        "sub": "u-42",
        "org": "acme",
        "roles": ["inventory_clerk", "viewer"],
        "sid": "s_" + secrets.token_hex(16),
        "amr": ["pwd"],
        "auth_time": now,
        "iat": now,
        "exp": now + 900,
        "jti": secrets.token_hex(16),
        "typ": "access",
        "ep": 0,
    }


def percentiles(name: str, n: int, f) -> None:
    for _ in range(n // 10):
        f()
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        f()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    p50 = samples[n // 2] / 1000
    p99 = samples[min(n - 1, int(n * 0.99))] / 1000
    print(f"{name:<28} n={n:<6} p50={p50:8.1f}us p99={p99:8.1f}us")


def main() -> None:
    n = 5000
    for alg, key in (
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ):
        public = key.public_key()
        headers = {"kid": "jwt-0123456789abcdef"}
        token = jwt.encode(claims(), key, algorithm=alg, headers=headers)
        percentiles(f"pyjwt sign ({alg})", n, lambda: jwt.encode(claims(), key, algorithm=alg, headers=headers))
        percentiles(
            f"pyjwt verify ({alg})",
            n,
            lambda: jwt.decode(token, public, algorithms=[alg], issuer="warden"),
        )


if __name__ == "__main__":
    main()
