"""boto3 against jitpilot's local AWS API: S3 bucket + template upload,
CloudFormation create_stack from a TemplateURL, the stack_create_complete
waiter, describe calls, delete_stack + stack_delete_complete waiter.

Reads the endpoint and credentials from the environment (`eval "$(jitpilot
env)"`). Usage: python3 stack_boto3.py TEMPLATE_FILE STACK_NAME
Prints one JSON line with what it saw; exits non-zero on any failure.
"""

import json
import sys

import boto3
import botocore.config


def main() -> int:
    template_file, stack_name = sys.argv[1], sys.argv[2]
    config = botocore.config.Config(retries={"max_attempts": 1})
    s3 = boto3.client("s3", config=config)
    cfn = boto3.client("cloudformation", config=config)

    bucket = "boto3-templates"
    s3.create_bucket(Bucket=bucket)
    with open(template_file, "rb") as f:
        s3.put_object(Bucket=bucket, Key="stack/template.json", Body=f.read())
    url = f"{s3.meta.endpoint_url}/{bucket}/stack/template.json"

    created = cfn.create_stack(
        StackName=stack_name,
        TemplateURL=url,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    template = cfn.get_template(StackName=stack_name)["TemplateBody"]

    try:
        cfn.update_stack(
            StackName=stack_name,
            UsePreviousTemplate=True,
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        no_updates = None
    except cfn.exceptions.ClientError as e:
        no_updates = e.response["Error"]["Message"]

    cfn.delete_stack(StackName=stack_name)
    cfn.get_waiter("stack_delete_complete").wait(
        StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    try:
        cfn.describe_stacks(StackName=stack_name)
        gone = False
    except cfn.exceptions.ClientError as e:
        gone = "does not exist" in e.response["Error"]["Message"]

    s3.delete_object(Bucket=bucket, Key="stack/template.json")
    s3.delete_bucket(Bucket=bucket)
    print(
        json.dumps(
            {
                "stackId": created["StackId"],
                "status": stack["StackStatus"],
                "outputs": sorted(o["OutputKey"] for o in stack.get("Outputs", [])),
                "events": len(events),
                "resources": sorted(r["LogicalResourceId"] for r in resources),
                "templateIsDict": isinstance(template, dict),
                "noUpdates": no_updates,
                "gone": gone,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
