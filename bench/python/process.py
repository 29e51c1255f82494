"""Reference process function, written the usual way with Powertools for AWS Lambda (Python):
BatchProcessor over an SQS batch with partial failures, signature check, and a conditional
DynamoDB put per record. Only here to be timed next to Sluice's Rust process function."""
import base64
import hashlib
import hmac
import json
import os

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)
table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
SECRET = base64.b64decode(os.environ["SIGNING_KEY_B64"])


def record_handler(record: SQSRecord):
    sig = (record.message_attributes.get("signature") or {}).get("stringValue", "")
    expected = hmac.new(SECRET, record.body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sig, expected):
        raise ValueError("bad signature")
    env = json.loads(record.body)
    try:
        table.put_item(
            Item={"pk": env["tenant"], "sk": env["id"], "type": env["type"], "data": json.dumps(env["data"]),
                  "occurred_at": env["occurred_at"], "received_at": env["received_at"],
                  "request_id": env["request_id"]},
            ConditionExpression="attribute_not_exists(sk)",
        )
    except table.meta.client.exceptions.ConditionalCheckFailedException:
        pass  # a redelivery: already stored


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
