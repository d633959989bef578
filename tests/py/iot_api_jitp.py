#!/usr/bin/env python3
"""JITP set up by an outside AWS client, as the sample's `certs_etc.py` does
it, against jitpilot's local AWS API; then a device that never touched
jitpilot's code connects through it.

1. boto3: the registration code; a CA made with `cryptography` (RSA 2048,
   as the sample's openssl commands make it); a verification certificate
   with a wrong CN is refused (CertificateValidationException); the right
   one registers the CA; registering it again is ResourceAlreadyExists;
   `update-ca-certificate` sets it ACTIVE, then enables auto-registration
   with a JITP template (thing named by the CommonName, a Country
   attribute, a policy, ACTIVE);
2. paho-mqtt: a device certificate from that CA connects twice — the
   first connect is refused (JITP registered it), the second accepted;
3. boto3: `describe_thing`, `list_thing_principals`, `describe_certificate`
   and `list_attached_policies` show the device provisioned by THAT
   template; a topic rule created through the API republishes on the
   running endpoint; `describe_endpoint` names the endpoint.

The AWS client is configured by the environment (`jitpilot env`'s
exports). Prints one JSON line; exits non-zero with the failed check.
Needs boto3, paho-mqtt (2.x) and cryptography.
"""
import argparse
import datetime
import json
import os
import ssl
import sys
import time

import boto3
import paho.mqtt.client as mqtt
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

WAIT_S = 30.0
THING = "PYJITP0001"
POLICY = "PyApiDevicePolicy"
RULE = "py_api_echo"

TEMPLATE = {
    "Parameters": {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Country": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                "AttributePayload": {
                    "madeBy": "boto3",
                    "country": {"Ref": "AWS::IoT::Certificate::Country"},
                },
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {
                "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                "Status": "ACTIVE",
            },
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": POLICY}},
    },
}

POLICY_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": "*"},
    ],
}


def check(condition, what):
    if not condition:
        raise SystemExit(f"check failed: {what}")


def error_code(call):
    """The AWS error code `call` raised, or None if it succeeded."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def name(cn, country=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if country:
        attrs.insert(0, x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    return x509.Name(attrs)


def sign(subject, public_key, issuer, issuer_key, is_ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def connect_once(args, files, client_id):
    """One connect: ('accepted', client) or ('refused', None)."""
    state = {"connack": None, "closed": False, "messages": [], "suback": None}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=args.root_ca, certfile=files["cert"], keyfile=files["key"],
                   tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.on_connect = lambda _c, _u, _f, rc, _p: state.__setitem__("connack", rc)
    client.on_disconnect = lambda _c, _u, _f, _rc, _p: state.__setitem__("closed", True)
    client.on_message = lambda _c, _u, msg: state["messages"].append((msg.topic, msg.payload))
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: state.__setitem__("suback", [int(r.value) for r in rcs])
    host, port = args.mqtt_addr.rsplit(":", 1)
    try:
        client.connect(host, int(port), keepalive=30)
    except (ssl.SSLError, OSError):
        return "refused", None, state
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and state["connack"] is None and not state["closed"]:
        if client.loop(timeout=0.2) != mqtt.MQTT_ERR_SUCCESS and state["connack"] is None:
            return "refused", None, state
    if state["connack"] is not None and not state["connack"].is_failure:
        return "accepted", client, state
    return "refused", None, state


def loop_until(client, done):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not done():
        client.loop(timeout=0.2)
    return done()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mqtt-addr", required=True, help="host:port of jitpilot's MQTT endpoint")
    p.add_argument("--root-ca", required=True, help="jitpilot's endpoint CA (PEM)")
    p.add_argument("--workdir", required=True)
    args = p.parse_args()
    iot = boto3.client("iot")
    out = {}

    # 1. The CA, proved with the registration code.
    code = iot.get_registration_code()["registrationCode"]
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = name("PyApiVendorCA", "US")
    ca = sign(ca_name, ca_key.public_key(), ca_name, ca_key, True)
    proof_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = sign(name("not-the-registration-code"), proof_key.public_key(), ca_name, ca_key, False)
    out["wrong_code"] = error_code(lambda: iot.register_ca_certificate(
        caCertificate=pem(ca), verificationCertificate=pem(wrong)))
    check(out["wrong_code"] == "CertificateValidationException", f"wrong code answered {out['wrong_code']}")
    proof = sign(name(code, "US"), proof_key.public_key(), ca_name, ca_key, False)
    registered = iot.register_ca_certificate(caCertificate=pem(ca), verificationCertificate=pem(proof))
    ca_id = registered["certificateId"]
    check(registered["certificateArn"].endswith(f":cacert/{ca_id}"), "CA ARN")
    out["again"] = error_code(lambda: iot.register_ca_certificate(
        caCertificate=pem(ca), verificationCertificate=pem(proof)))
    check(out["again"] == "ResourceAlreadyExistsException", f"second registration answered {out['again']}")
    iot.update_ca_certificate(certificateId=ca_id, newStatus="ACTIVE")
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps(POLICY_DOCUMENT))
    iot.update_ca_certificate(
        certificateId=ca_id,
        newAutoRegistrationStatus="ENABLE",
        registrationConfig={"templateBody": json.dumps(TEMPLATE),
                            "roleArn": "arn:aws:iam::123456789012:role/PyJitpRole"},
    )
    described = iot.describe_ca_certificate(certificateId=ca_id)
    check(described["certificateDescription"]["status"] == "ACTIVE", "CA ACTIVE")
    check(described["certificateDescription"]["autoRegistrationStatus"] == "ENABLE", "auto-registration")
    check(json.loads(described["registrationConfig"]["templateBody"]) == TEMPLATE, "template kept")
    listed = [c["certificateId"] for page in iot.get_paginator("list_ca_certificates").paginate()
              for c in page["certificates"]]
    check(ca_id in listed, "CA listed")

    # 2. The device: JITP on the first connect, accepted on the second.
    device_key = ec.generate_private_key(ec.SECP256R1())
    device = sign(name(THING, "FR"), device_key.public_key(), ca_name, ca_key, False)
    os.makedirs(args.workdir, exist_ok=True)
    files = {"cert": os.path.join(args.workdir, "device.cert.pem"),
             "key": os.path.join(args.workdir, "device.key.pem")}
    with open(files["cert"], "w") as f:
        f.write(pem(device) + pem(ca))
    with open(files["key"], "w") as f:
        f.write(device_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode())
    out["first"], _, _ = connect_once(args, files, THING)
    out["second"], client, state = connect_once(args, files, THING)
    check(out["first"] == "refused", f"first connect {out['first']}")
    check(out["second"] == "accepted", f"second connect {out['second']}")

    # 3. Provisioned by that template, as boto3 reads it back.
    thing = iot.describe_thing(thingName=THING)
    check(thing["attributes"] == {"madeBy": "boto3", "country": "FR"}, f"attributes {thing['attributes']}")
    device_id = device.fingerprint(hashes.SHA256()).hex()
    principals = iot.list_thing_principals(thingName=THING)["principals"]
    check(principals == [f"arn:aws:iot:us-east-1:123456789012:cert/{device_id}"], f"principals {principals}")
    cert = iot.describe_certificate(certificateId=device_id)["certificateDescription"]
    check(cert["status"] == "ACTIVE" and cert["caCertificateId"] == ca_id, f"certificate {cert['status']}")
    policies = iot.list_attached_policies(target=principals[0])["policies"]
    check([x["policyName"] for x in policies] == [POLICY], f"policies {policies}")
    check(iot.list_principal_things(principal=principals[0])["things"] == [THING], "principal things")

    # A rule made through the API runs on the endpoint at once.
    iot.create_topic_rule(ruleName=RULE, topicRulePayload={
        "sql": "SELECT * FROM 'pyapi/in/+'",
        "actions": [{"republish": {"topic": "pyapi/out/${topic(3)}",
                                   "roleArn": "arn:aws:iam::123456789012:role/r", "qos": 1}}],
    })
    client.subscribe("pyapi/out/#", qos=1)
    check(loop_until(client, lambda: state["suback"] is not None), "suback")
    client.publish("pyapi/in/x", b'{"n": 1}', qos=1)
    out["republished"] = loop_until(client, lambda: any(t == "pyapi/out/x" for t, _ in state["messages"]))
    check(out["republished"], f"the API's rule republished nothing: {state['messages']}")
    client.disconnect()
    iot.delete_topic_rule(ruleName=RULE)
    out["rule_gone"] = error_code(lambda: iot.get_topic_rule(ruleName=RULE))

    out["endpoint"] = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    out["ca_id"] = ca_id
    out["certificate_id"] = device_id
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
