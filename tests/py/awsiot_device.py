#!/usr/bin/env python3
"""A device built on AWS's own SDK: the AWS IoT Device SDK for Python's MQTT 5
client (`awsiot.mqtt5_client_builder.mtls_from_path`, on awscrt) performs the
walkthrough's steps 3a, 3b and 3c against `jitpilot serve`, exactly as it
would against AWS IoT Core: only its factory files, the sample's topics and
payloads, and the SDK's own reconnect loop. Nothing here knows about jitpilot.

  3a  start the client with vendor.cert.pem (+ Vendor CA); JITP drops the
      first connection, the SDK reconnects (its own backoff) and is accepted
  3b  new EC P-256 key, CSR with CN = serial, {"csr"} -> .../create-man-cert/<serial>/rqst
      (PUBACK reason code checked), {"pem", "cert_id"} <- .../rspn
      and, refused: a publish to another device's request topic gets
      PUBACK 0x87 Not authorized with a reason string, a subscription to
      another device's response topic SUBACK 0x87
  3c  a client with the new cert: {"cert_id"} -> .../ack-man-cert/<serial>/rqst,
      {"cert_id"} <- .../rspn

Prints one JSON line with what it saw. Needs awsiotsdk (import name
`awsiot`) and `cryptography`.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time

from awscrt import mqtt5
from awsiot import mqtt5_client_builder

WAIT_S = 30.0


class Device:
    """One MQTT 5 client of the SDK, with its callbacks turned into events."""

    def __init__(self, args, cert, key):
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.failures = []
        self.messages = []
        self.lock = threading.Lock()
        host, port = args.addr.rsplit(":", 1)
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint=host,
            port=int(port),
            cert_filepath=cert,
            pri_key_filepath=key,
            ca_filepath=os.path.join(args.creds, "root-ca.pem"),
            client_id=args.serial,
            session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
            min_reconnect_delay_ms=50,
            max_reconnect_delay_ms=2000,
            on_publish_received=self.on_publish,
            on_lifecycle_connection_success=lambda _d: self.connected.set(),
            on_lifecycle_connection_failure=self.on_failure,
            on_lifecycle_stopped=lambda _d: self.stopped.set(),
        )

    def on_publish(self, data):
        p = data.publish_packet
        with self.lock:
            self.messages.append((p.topic, bytes(p.payload)))

    def on_failure(self, data):
        connack = data.connack_packet
        self.failures.append({
            "reason_code": int(connack.reason_code) if connack else None,
            "reason_string": connack.reason_string if connack else None,
            "error": str(data.exception),
        })

    def start(self):
        self.client.start()
        if not self.connected.wait(WAIT_S * 2):
            raise SystemExit(f"never connected: {self.failures}")

    def stop(self):
        self.client.stop()
        self.stopped.wait(WAIT_S)

    def subscribe(self, topic):
        suback = self.client.subscribe(mqtt5.SubscribePacket(subscriptions=[
            mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)])).result(WAIT_S)
        return [int(c) for c in suback.reason_codes], suback.reason_string

    def publish(self, topic, payload):
        done = self.client.publish(mqtt5.PublishPacket(
            topic=topic, payload=json.dumps(payload).encode(), qos=mqtt5.QoS.AT_LEAST_ONCE,
            content_type="application/json",
            user_properties=[mqtt5.UserProperty(name="sdk", value="awsiot-mqtt5")])).result(WAIT_S)
        return int(done.puback.reason_code), done.puback.reason_string

    def request(self, topic, payload, response_topic, attempts=3):
        """Publishes at QoS 1 and waits for the response; re-asks on timeout."""
        for _ in range(attempts):
            code, why = self.publish(topic, payload)
            if code != 0:
                raise SystemExit(f"PUBACK {code:#04x} for {topic}: {why}")
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                with self.lock:
                    for t, p in self.messages:
                        if t == response_topic:
                            return json.loads(p)
                time.sleep(0.02)
        raise SystemExit(f"no response on {response_topic}")


def new_key_and_csr(serial):
    """(key PEM, CSR PEM) for a NEW EC P-256 key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--creds", required=True)
    p.add_argument("--serial", required=True)
    p.add_argument("--other", required=True, help="another device's serial, for the refusals")
    args = p.parse_args()
    work = tempfile.mkdtemp()
    facts = {}

    # 3a: the SDK's reconnect loop carries it through JITP's dropped first connection.
    d = Device(args, os.path.join(args.creds, "vendor.cert.pem"), os.path.join(args.creds, "vendor.key.pem"))
    d.start()
    facts["jitp_failures"] = len(d.failures)
    facts["jitp_first_failure"] = d.failures[0] if d.failures else None

    # Refusals answered with reason codes, the connection staying up.
    code, why = d.publish(f"/cert-rotation/create-man-cert/{args.other}/rqst", {"csr": "x"})
    facts["refused_publish"] = {"reason_code": code, "reason_string": why}
    codes, why = d.subscribe(f"/cert-rotation/create-man-cert/{args.other}/rspn")
    facts["refused_subscribe"] = {"reason_codes": codes, "reason_string": why}

    # 3b
    key_pem, csr_pem = new_key_and_csr(args.serial)
    rspn = f"/cert-rotation/create-man-cert/{args.serial}/rspn"
    codes, _ = d.subscribe(rspn)
    facts["suback"] = codes
    resp = d.request(f"/cert-rotation/create-man-cert/{args.serial}/rqst", {"csr": csr_pem}, rspn)
    d.stop()
    if "pem" not in resp:
        raise SystemExit(f"3b refused: {resp}")
    import ssl
    if hashlib.sha256(ssl.PEM_cert_to_DER_cert(resp["pem"])).hexdigest() != resp["cert_id"]:
        raise SystemExit("cert_id is not the SHA-256 of the certificate")
    cert_path, key_path = os.path.join(work, "man.cert.pem"), os.path.join(work, "man.key.pem")
    with open(cert_path, "w") as f:
        f.write(resp["pem"])
    with open(key_path, "w") as f:
        f.write(key_pem)

    # 3c
    d = Device(args, cert_path, key_path)
    d.start()
    rspn = f"/cert-rotation/ack-man-cert/{args.serial}/rspn"
    d.subscribe(rspn)
    ack = d.request(f"/cert-rotation/ack-man-cert/{args.serial}/rqst", {"cert_id": resp["cert_id"]}, rspn)
    d.stop()
    facts["cert_id"] = resp["cert_id"]
    facts["acked"] = ack.get("cert_id") == resp["cert_id"]
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
