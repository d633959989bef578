#!/usr/bin/env python3
"""boto3 against jitpilot's local AWS API: DynamoDB, SSM and Lambda as the
sample's scripts and Lambda use them, plus what they must refuse.

Reads the endpoint and credentials from the environment
(`eval "$(jitpilot env)"`). Exits non-zero with the failed check on stderr;
prints one JSON line of facts for the Rust test on success.
Needs `python3 -m pip install boto3`.
"""
import json
import sys
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

TABLE = "ApiDataItems"
DEVICES = "CertRotationDevices"
FUNCTION = "CertRotation-cert-rotation"


def code(err):
    return err.response["Error"]["Code"]


def expect_error(expected, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as err:
        assert code(err) == expected, f"{call.__name__}: expected {expected}, got {code(err)}: {err}"
        return err
    raise AssertionError(f"{call.__name__} succeeded; expected {expected}")


def dynamodb_checks(facts):
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    expect_error("ResourceInUseException", ddb.create_table, TableName=TABLE,
                 KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                 AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
                 BillingMode="PAY_PER_REQUEST")
    expect_error("ResourceNotFoundException", ddb.describe_table, TableName="NoSuchTable")
    assert TABLE in ddb.list_tables()["TableNames"]

    # Conditional put: the second is refused and changes nothing.
    item = {"Id": {"S": "a"}, "N": {"N": "1.50"}, "B": {"B": b"\x00\x01"}, "Tags": {"SS": ["x", "y"]},
            "M": {"M": {"L": {"L": [{"BOOL": True}, {"NULL": True}]}}}}
    ddb.put_item(TableName=TABLE, Item=item, ConditionExpression="attribute_not_exists(Id)")
    err = expect_error("ConditionalCheckFailedException", ddb.put_item, TableName=TABLE,
                       Item={"Id": {"S": "a"}, "N": {"N": "9"}}, ConditionExpression="attribute_not_exists(Id)")
    assert isinstance(err, ddb.exceptions.ConditionalCheckFailedException)
    got = ddb.get_item(TableName=TABLE, Key={"Id": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert got["N"] == {"N": "1.5"}, got
    assert got["B"] == {"B": b"\x00\x01"}, got
    assert sorted(got["Tags"]["SS"]) == ["x", "y"], got
    assert got["M"]["M"]["L"]["L"] == [{"BOOL": True}, {"NULL": True}], got

    # Update with names, values, a condition and ReturnValues.
    out = ddb.update_item(
        TableName=TABLE, Key={"Id": {"S": "a"}},
        UpdateExpression="SET #s = :s, N = N + :one REMOVE Tags",
        ConditionExpression="#n = :n OR attribute_not_exists(#n)",
        ExpressionAttributeNames={"#s": "State", "#n": "N"},
        ExpressionAttributeValues={":s": {"S": "READY"}, ":one": {"N": "1"}, ":n": {"N": "1.5"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert out["State"] == {"S": "READY"} and out["N"] == {"N": "2.5"} and "Tags" not in out, out
    expect_error("ConditionalCheckFailedException", ddb.update_item, TableName=TABLE, Key={"Id": {"S": "a"}},
                 UpdateExpression="SET #s = :s", ConditionExpression="#s = :old",
                 ExpressionAttributeNames={"#s": "State"},
                 ExpressionAttributeValues={":s": {"S": "X"}, ":old": {"S": "NOT-READY"}})
    bad = expect_error("ValidationException", ddb.update_item, TableName=TABLE, Key={"Id": {"S": "a"}},
                       UpdateExpression="SET = :s", ExpressionAttributeValues={":s": {"S": "X"}})
    assert "UpdateExpression" in str(bad), str(bad)

    # A batch of 25, then a scan paged by Limit, and a query.
    with_batch = [{"PutRequest": {"Item": {"Id": {"S": f"b{i:02}"}, "I": {"N": str(i)}}}} for i in range(25)]
    assert ddb.batch_write_item(RequestItems={TABLE: with_batch})["UnprocessedItems"] == {}
    pages = ddb.get_paginator("scan").paginate(TableName=TABLE, PaginationConfig={"PageSize": 7})
    ids = [it["Id"]["S"] for page in pages for it in page["Items"]]
    assert len(ids) == 26 and len(set(ids)) == 26, ids
    filtered = ddb.scan(TableName=TABLE, FilterExpression="I >= :ten", ExpressionAttributeValues={":ten": {"N": "10"}})
    assert filtered["Count"] == 15, filtered["Count"]
    q = ddb.query(TableName=TABLE, KeyConditionExpression="Id = :id", ExpressionAttributeValues={":id": {"S": "b03"}})
    assert q["Count"] == 1 and q["Items"][0]["I"] == {"N": "3"}, q
    too_many = [{"PutRequest": {"Item": {"Id": {"S": f"c{i}"}}}} for i in range(26)]
    expect_error("ValidationException", ddb.batch_write_item, RequestItems={TABLE: too_many})
    ddb.delete_item(TableName=TABLE, Key={"Id": {"S": "b00"}}, ConditionExpression="attribute_exists(Id)")
    expect_error("ConditionalCheckFailedException", ddb.delete_item, TableName=TABLE, Key={"Id": {"S": "b00"}},
                 ConditionExpression="attribute_exists(Id)")

    # The sample's way: the boto3 resource, Decimal numbers, on the device table.
    table = boto3.resource("dynamodb").Table(DEVICES)
    table.put_item(Item={"SerialNumber": "BOTO3-1", "CrState": "CR_WHITELISTED", "Retries": Decimal("2")})
    row = table.get_item(Key={"SerialNumber": "BOTO3-1"})["Item"]
    assert row["CrState"] == "CR_WHITELISTED" and row["Retries"] == Decimal("2"), row
    whitelisted = table.scan(FilterExpression=Attr("CrState").eq("CR_WHITELISTED"))["Items"]
    facts["whitelisted"] = sorted(r["SerialNumber"] for r in whitelisted)
    assert table.query(KeyConditionExpression=Key("SerialNumber").eq("BOTO3-1"))["Count"] == 1
    old = table.delete_item(Key={"SerialNumber": "BOTO3-1"}, ReturnValues="ALL_OLD")["Attributes"]
    assert old["SerialNumber"] == "BOTO3-1", old
    table.put_item(Item={"SerialNumber": "BOTO3-2", "CrState": "CR_WHITELISTED"})


def ssm_checks(facts):
    ssm = boto3.client("ssm")
    secret = "-----BEGIN PRIVATE KEY-----\nboto3\n-----END PRIVATE KEY-----\n"
    assert ssm.put_parameter(Name="cr-ca-key-boto3", Value=secret, Type="SecureString")["Version"] == 1
    expect_error("ParameterAlreadyExists", ssm.put_parameter, Name="cr-ca-key-boto3", Value=secret, Type="SecureString")
    assert ssm.put_parameter(Name="cr-ca-key-boto3", Value=secret, Type="SecureString", Overwrite=True)["Version"] == 2
    clear = ssm.get_parameter(Name="cr-ca-key-boto3", WithDecryption=True)["Parameter"]
    assert clear["Value"] == secret and clear["Type"] == "SecureString", clear
    hidden = ssm.get_parameter(Name="cr-ca-key-boto3")["Parameter"]["Value"]
    assert "PRIVATE KEY" not in hidden and hidden != secret, hidden
    listed = ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": ["cr-ca-key-"]}])
    facts["ca_key_parameters"] = sorted(p["Name"] for page in listed for p in page["Parameters"])
    # jitpilot init's own CA key is readable as the sample's Lambda reads it.
    own = [n for n in facts["ca_key_parameters"] if n != "cr-ca-key-boto3"]
    assert own, facts
    facts["init_key_starts"] = ssm.get_parameter(Name=own[0], WithDecryption=True)["Parameter"]["Value"][:27]
    ssm.delete_parameter(Name="cr-ca-key-boto3")
    expect_error("ParameterNotFound", ssm.delete_parameter, Name="cr-ca-key-boto3")
    expect_error("ParameterNotFound", ssm.get_parameter, Name="cr-ca-key-boto3")


def lambda_checks(facts):
    lam = boto3.client("lambda")
    config = lam.get_function_configuration(FunctionName=FUNCTION)
    assert config["Runtime"] == "provided.al2023" and config["State"] == "Active", config
    lam.get_waiter("function_updated").wait(FunctionName=FUNCTION, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    updated = lam.update_function_configuration(FunctionName=FUNCTION, Timeout=45)
    assert updated["Timeout"] == 45, updated
    # The real rotation function: a CSR from a serial that is not whitelisted is refused.
    event = {"data": {"csr": "not a csr"}, "topic": "/cert-rotation/create-man-cert/NOPE1/rqst",
             "client_id": "NOPE1", "cert_id": "0" * 64}
    out = lam.invoke(FunctionName=FUNCTION, Payload=json.dumps(event).encode())
    assert out["StatusCode"] == 200, out
    facts["invoke"] = json.loads(out["Payload"].read())
    facts["invoke_function_error"] = out.get("FunctionError")
    expect_error("ResourceNotFoundException", lam.get_function, FunctionName="no-such-function")
    expect_error("InvalidRequestContentException", lam.invoke, FunctionName=FUNCTION, Payload=b"{not json")


def main():
    facts = {}
    dynamodb_checks(facts)
    ssm_checks(facts)
    lambda_checks(facts)
    print(json.dumps(facts))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"check failed: {err}", file=sys.stderr)
        raise
