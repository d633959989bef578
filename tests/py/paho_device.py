#!/usr/bin/env python3
"""A device written against the AWS sample's wire contract, in Python with
Eclipse Paho: it performs steps 3a, 3b and 3c against `jitpilot serve` using
only its factory files and the sample's topics and payloads. Nothing here
knows about jitpilot.

  3a  connect with vendor.cert.pem (+ Vendor CA) until JITP has provisioned it
  3b  new EC P-256 key, CSR with CN = serial, {"csr"} -> .../create-man-cert/<serial>/rqst,
      {"pem", "cert_id"} <- .../rspn; the cert is checked (key, issuer, id)
  3c  connect with the new cert, {"cert_id"} -> .../ack-man-cert/<serial>/rqst,
      {"cert_id"} <- .../rspn

Prints one JSON line: {"jitp_attempts": n, "cert_id": ..., "acked": true}.
Needs paho-mqtt 2.x and the `cryptography` package (falls back to `openssl`).
"""
import argparse
import hashlib
import json
import os
import random
import ssl
import sys
import tempfile
import time

import paho.mqtt.client as mqtt

WAIT_S = 20.0


class Session:
    """One MQTT connection, driven by hand (no background reconnects)."""

    def __init__(self, args, certfile, keyfile):
        self.connack = None
        self.closed = False
        self.suback = False
        self.messages = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.serial, protocol=mqtt.MQTTv311)
        c.tls_set(ca_certs=os.path.join(args.creds, "root-ca.pem"), certfile=certfile, keyfile=keyfile,
                  tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = lambda _c, _u, _f, rc, _p: setattr(self, "connack", rc)
        c.on_disconnect = lambda _c, _u, _f, _rc, _p: setattr(self, "closed", True)
        c.on_subscribe = lambda _c, _u, _m, _rcs, _p: setattr(self, "suback", True)
        c.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client = c
        self.host, port = args.addr.rsplit(":", 1)
        self.port = int(port)

    def wait(self, done, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done() and not self.closed:
            self.client.loop(timeout=0.1)
        return done()

    def connect(self):
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return False
        return self.wait(lambda: self.connack is not None) and not self.connack.is_failure

    def subscribe(self, topic):
        self.client.subscribe(topic, qos=1)
        if not self.wait(lambda: self.suback):
            raise SystemExit(f"no SUBACK for {topic}")

    def request(self, topic, payload, response_topic, attempts=3):
        """Publishes at QoS 1 and waits for the response; re-asks on timeout."""
        for _ in range(attempts):
            self.client.publish(topic, json.dumps(payload), qos=1)
            if self.wait(lambda: any(t == response_topic for t, _ in self.messages), 10.0):
                return json.loads(next(p for t, p in self.messages if t == response_topic))
        raise SystemExit(f"no response on {response_topic}")


def connect_with_backoff(args, certfile, keyfile, attempts=10):
    for attempt in range(1, attempts + 1):
        s = Session(args, certfile, keyfile)
        if s.connect():
            return s, attempt
        # Exponential backoff with full jitter: JITP is provisioning the cert.
        time.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** attempt)))
    raise SystemExit(f"refused {attempts} times")


def new_key_and_csr(serial, workdir):
    """(key PEM, CSR PEM) for a NEW EC P-256 key."""
    x509, hashes, serialization, ec, NameOID = crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def crypto():
    """The `cryptography` package: required, never skipped (scripts/test installs it)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise SystemExit("the Python package `cryptography` is missing: "
                         "python3 -m pip install cryptography (scripts/test installs it)")
    return x509, hashes, serialization, ec, NameOID


def check_cert(cert_pem, cert_id, key_pem, ca_pem):
    """The returned cert is ours: our key, signed by the Manufacturer CA, id = SHA-256(DER)."""
    import ssl as _ssl
    der = _ssl.PEM_cert_to_DER_cert(cert_pem)
    if hashlib.sha256(der).hexdigest() != cert_id:
        raise SystemExit("cert_id is not the SHA-256 of the certificate")
    x509, _hashes, serialization, ec, _oid = crypto()
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise SystemExit("the certificate is not for our key")
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                           ec.ECDSA(cert.signature_hash_algorithm))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--serial", required=True)
    args = p.parse_args()
    creds = args.creds
    work = tempfile.mkdtemp()

    # 3a
    s, jitp_attempts = connect_with_backoff(args, os.path.join(creds, "vendor.cert.pem"),
                                            os.path.join(creds, "vendor.key.pem"))
    # 3b
    key_pem, csr_pem = new_key_and_csr(args.serial, work)
    rspn = f"/cert-rotation/create-man-cert/{args.serial}/rspn"
    s.subscribe(rspn)
    resp = s.request(f"/cert-rotation/create-man-cert/{args.serial}/rqst", {"csr": csr_pem}, rspn)
    s.client.disconnect()
    check_cert(resp["pem"], resp["cert_id"], key_pem, open(os.path.join(creds, "manufacturer-ca.pem")).read())
    cert_path, key_path = os.path.join(work, "man.cert.pem"), os.path.join(work, "man.key.pem")
    with open(cert_path, "w") as f:
        f.write(resp["pem"])
    with open(key_path, "w") as f:
        f.write(key_pem)

    # 3c
    s, _ = connect_with_backoff(args, cert_path, key_path, attempts=3)
    rspn = f"/cert-rotation/ack-man-cert/{args.serial}/rspn"
    s.subscribe(rspn)
    ack = s.request(f"/cert-rotation/ack-man-cert/{args.serial}/rqst", {"cert_id": resp["cert_id"]}, rspn)
    s.client.disconnect()
    print(json.dumps({"jitp_attempts": jitp_attempts, "cert_id": resp["cert_id"],
                      "acked": ack.get("cert_id") == resp["cert_id"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
