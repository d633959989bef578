"""Handlers for jitpilot's Lambda Runtime API tests, run by awslambdaric
exactly as AWS Lambda's python runtime runs a function's handler.

- echo:  answers with the event and what Lambda told the function
- fail:  raises, so the invocation is reported as a function error
- crash: the process dies mid-invocation
- hang:  never answers, so the invocation times out
"""

import os
import sys
import time


def echo(event, context):
    print("echo invoked with", event)
    print("a line with a\x1b[31m control character", file=sys.stderr)
    return {
        "event": event,
        "function": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "pid": os.getpid(),
        "env": {
            k: os.environ.get(k)
            for k in (
                "GREETING",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_LAMBDA_FUNCTION_NAME",
                "_HANDLER",
                "LAMBDA_TASK_ROOT",
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "HOME_SECRET",
            )
        },
    }


def fail(event, context):
    raise ValueError("the event has no serial: " + repr(event))


def crash(event, context):
    if event.get("crash"):
        print("crashing now", flush=True)
        os._exit(3)
    return {"pid": os.getpid()}


def hang(event, context):
    if event.get("hang"):
        time.sleep(3600)
    return {"pid": os.getpid()}
