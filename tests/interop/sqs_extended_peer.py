"""amazon-sqs-extended-client, as its users run it, in a process of its own.

Importing ``sqs_extended_client`` replaces ``boto3.Session`` for the whole
process, so it must not share one with our SqsBroker. Reads a JSON plan on
stdin: ``{"endpoint_url", "region", "credentials": {...}, "queue_url",
"bucket", "op": "send" | "receive", ...}`` and prints one JSON document.

- send: ``messages: [{"body": str, "attributes": {name: str}, "s3_key": str?}]``
  (``s3_key`` is the library's ``S3Key`` attribute: the object key it offloads to);
- receive: ``max``; returns the bodies and attributes the library hands its
  user, and deletes each message through the library.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import boto3
import sqs_extended_client  # noqa: F401 - replaces boto3.Session with the extended one


def main(plan: dict[str, Any]) -> dict[str, Any]:
    session = boto3.session.Session(region_name=plan["region"], **plan["credentials"])
    sqs = session.client("sqs", endpoint_url=plan["endpoint_url"])
    sqs.large_payload_support = plan["bucket"]
    # The library makes its S3 client with the default endpoint; point it at ours.
    sqs.s3_client = session.client("s3", endpoint_url=plan["endpoint_url"])
    if plan["op"] == "send":
        ids = []
        for message in plan["messages"]:
            attributes = {
                name: {"DataType": "String", "StringValue": value}
                for name, value in message.get("attributes", {}).items()
            }
            if "s3_key" in message:
                attributes["S3Key"] = {"DataType": "String", "StringValue": message["s3_key"]}
            sent = sqs.send_message(
                QueueUrl=plan["queue_url"],
                MessageBody=message["body"],
                MessageAttributes=attributes,
            )
            ids.append(sent["MessageId"])
        return {"message_ids": ids}
    received: list[dict[str, Any]] = []
    while len(received) < plan["max"]:
        response = sqs.receive_message(
            QueueUrl=plan["queue_url"],
            MaxNumberOfMessages=min(10, plan["max"] - len(received)),
            MessageAttributeNames=["All"],
            WaitTimeSeconds=2,
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        for message in messages:
            received.append(
                {
                    "body": message["Body"],
                    "attributes": {
                        k: v.get("StringValue")
                        for k, v in message.get("MessageAttributes", {}).items()
                    },
                }
            )
            sqs.delete_message(QueueUrl=plan["queue_url"], ReceiptHandle=message["ReceiptHandle"])
    return {"messages": received}


if __name__ == "__main__":
    print(json.dumps(main(json.load(sys.stdin))))
