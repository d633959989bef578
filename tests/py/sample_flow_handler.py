"""A Lambda handler for tests/sample_flow.rs, shaped like the sample's
rotation function: invoked by a topic rule with
`SELECT * as data, topic() as topic, ...`, it uses boto3 (pointed at the
local cloud's AWS API by the runtime's environment) to record what it saw
in the stack's DynamoDB table and answers on the device's response topic
through iot-data Publish. Written for jitpilot's tests; not the sample's code.
"""

import json
import os

import boto3


def handle(event, context):
    topic = event.get("topic") or ""
    parts = topic.split("/")
    serial = parts[-2] if len(parts) > 2 else event.get("serial", "none")
    table = boto3.resource("dynamodb").Table(os.environ.get("TABLE", "SampleFlowDevices"))
    table.put_item(
        Item={
            "SerialNumber": serial,
            "SeenTopic": topic,
            "Data": json.dumps(event.get("data")),
            "Function": context.function_name,
        }
    )
    boto3.client("iot-data").publish(
        topic="/sample-flow/{}/rspn".format(serial),
        qos=1,
        payload=json.dumps({"seen": serial}),
    )
    return {"recorded": serial, "function": context.function_name}
