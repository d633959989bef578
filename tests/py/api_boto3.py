"""boto3 against jitpilot's AWS API: identity, refusals, iot-data Publish.

Run by tests/api.rs with AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION from `jitpilot env`.
Usage: api_boto3.py PUBLISH_TOPIC   (publishes {"hello": "from boto3"} there)
Prints one line per check and `ok` at the end; exits non-zero on a failure.
"""

import json
import os
import sys

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
NO_RETRY = Config(retries={"max_attempts": 1, "mode": "standard"})


def client(service, **kw):
    return boto3.client(service, config=NO_RETRY, **kw)


def refused(call, code, status):
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert (got, got_status) == (code, status), f"expected {code} {status}, got {got} {got_status}: {e}"
        assert e.response["ResponseMetadata"].get("RequestId"), f"no request id: {e.response}"
        print(f"refused as expected: {code} {status}")
        return
    raise AssertionError(f"expected {code}, the call succeeded")


def main():
    topic = sys.argv[1]

    ident = client("sts").get_caller_identity()
    assert ident["Account"] == ACCOUNT, ident
    assert ident["Arn"].startswith(f"arn:aws:iam::{ACCOUNT}:"), ident
    assert ident["ResponseMetadata"]["RequestId"], ident
    print("sts get-caller-identity:", ident["Arn"])

    # iot-data Publish: delivered to the MQTT subscriber the test runs.
    client("iot-data").publish(topic=topic, qos=1, payload=json.dumps({"hello": "from boto3"}).encode())
    print("iot-data publish to", topic)

    key = os.environ["AWS_ACCESS_KEY_ID"]
    wrong_secret = dict(aws_access_key_id=key, aws_secret_access_key="x" * 40)
    unknown_key = dict(aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="x" * 40)
    unsigned = Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1})

    # awsQuery (STS) codes.
    refused(lambda: client("sts", **wrong_secret).get_caller_identity(), "SignatureDoesNotMatch", 403)
    refused(lambda: client("sts", **unknown_key).get_caller_identity(), "InvalidClientTokenId", 403)
    refused(lambda: boto3.client("sts", config=unsigned).get_caller_identity(), "MissingAuthenticationToken", 403)
    # restJson1 (iot-data) codes.
    data = lambda **kw: client("iot-data", **kw).publish(topic=topic, qos=0, payload=b"{}")
    refused(lambda: data(**wrong_secret), "InvalidSignatureException", 403)
    refused(lambda: data(**unknown_key), "UnrecognizedClientException", 403)
    refused(
        lambda: boto3.client("iot-data", config=unsigned).publish(topic=topic, qos=0, payload=b"{}"),
        "MissingAuthenticationTokenException",
        403,
    )
    # A bad request in restJson1's shape.
    refused(lambda: client("iot-data").publish(topic="a/+/b", qos=0, payload=b"{}"), "InvalidRequestException", 400)
    print("ok")


if __name__ == "__main__":
    main()
