#!/usr/bin/env python3
"""Folds `perf script` output (samples with DWARF call stacks) of a fleet run
into a table: where in jitpilot the CPU went (context, from the whole stack)
x what kind of work it was (leaf: crypto, SQLite, allocator, kernel, ...).

    perf script -i perf.data | scripts/bench-profile-fold.py [--json]
"""
import json
import re
import sys
from collections import Counter, defaultdict

# Context: the first rule (in this order) matching any frame of the stack.
CONTEXTS = [
    ("rotation function: signing", r"pki::ca::sign_csr|pki::sign_csr|rcgen::.*signed_by"),
    ("rotation function: CSR/cert parsing", r"jitpilot::rotation::.*(parse|decide)|pki::csr::parse_csr|pki::cert::"),
    ("rotation function: store + audit", r"jitpilot::rotation::|functions::LocalRotationBackend|functions::CertRotation"),
    ("JITP provisioning", r"jitpilot::cloud::local::jitp::"),
    ("endpoint: TLS handshake", r"rustls::server::|ServerConnection|tokio_rustls::server|RegisteredCaVerifier"),
    ("device: TLS handshake", r"rustls::client::|ClientConnection|tokio_rustls::client"),
    ("endpoint: admission/policy", r"endpoint::admission|cloud::local::policy|endpoint::authz"),
    ("endpoint: rules engine", r"endpoint::rules_engine|cloud::local::rules"),
    ("endpoint: session/router", r"jitpilot::cloud::local::endpoint::"),
    ("device: key + CSR generation", r"pki::csr::create_csr|pki::ca::generate_key|KeyPair::generate"),
    ("device: credential files", r"simulated_devices::creds"),
    ("device: agent + MQTT client", r"simulated_devices::|rumqttc::"),
    ("event bus", r"cloud::events::"),
    ("logging", r"tracing_appender|tracing_subscriber"),
    ("fleet command", r"jitpilot::cli::"),
    ("tokio runtime", r"tokio::runtime::"),
]
CONTEXTS = [(name, re.compile(rx)) for name, rx in CONTEXTS]

# Kind of work: the leaf frame.
KINDS = [
    ("crypto", r"aws_lc|ecp_nistz256|nistz|sha256|sha512|sha3|keccak|curve25519|x25519|bn_|beeu|mlkem|aes_|gcm|chacha|p256|ec_GFp|ecdsa|ring_core|sha2::|RNG|rand_"),
    ("SQLite", r"sqlite3|pcache|wal[A-Z]|btree|Btree|vdbe|Vdbe"),
    ("allocator", r"malloc|free|_int_|realloc|calloc|cfree|unlink_chunk"),
    ("memcpy/memcmp", r"memmove|memcpy|memset|memcmp|strlen"),
    ("JSON", r"serde_json"),
    ("X.509/DER parsing", r"x509_parser|der_parser|asn1_rs|nom::|webpki|pem"),
]
KINDS = [(name, re.compile(rx)) for name, rx in KINDS]


def classify_leaf(frame, dso):
    if "kernel" in dso:
        return "kernel (syscalls, TCP, scheduling)"
    for name, rx in KINDS:
        if rx.search(frame):
            return name
    return "other"


def main():
    table = defaultdict(Counter)
    total = 0
    stack = []
    header = None
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            if header is not None and stack:
                total += 1
                leaf_sym, leaf_dso = stack[0]
                context = "other"
                for name, rx in CONTEXTS:
                    if any(rx.search(sym) for sym, _ in stack):
                        context = name
                        break
                table[context][classify_leaf(leaf_sym, leaf_dso)] += 1
            header, stack = None, []
            continue
        if not line.startswith((" ", "\t")):
            header = line
            continue
        parts = line.strip().split(" ", 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        m = re.match(r"(.*) \(([^)]*)\)$", rest)
        sym, dso = (m.group(1), m.group(2)) if m else (rest, "")
        stack.append((sym, dso))
    if total == 0:
        print("no samples", file=sys.stderr)
        sys.exit(1)
    rows = sorted(table.items(), key=lambda kv: -sum(kv[1].values()))
    if "--json" in sys.argv:
        print(json.dumps({
            "samples": total,
            "contexts": {c: {"percent": round(100 * sum(k.values()) / total, 1),
                             "kinds": {n: round(100 * v / total, 1) for n, v in k.most_common()}}
                         for c, k in rows},
        }, indent=2))
        return
    print(f"{total} samples")
    for context, kinds in rows:
        n = sum(kinds.values())
        detail = ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in kinds.most_common(4))
        print(f"{100 * n / total:5.1f}%  {context:40s} {detail}")
    kinds_total = Counter()
    for kinds in table.values():
        kinds_total.update(kinds)
    print("by kind of work:")
    for k, v in kinds_total.most_common():
        print(f"{100 * v / total:5.1f}%  {k}")


if __name__ == "__main__":
    main()
