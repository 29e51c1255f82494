"""Reference ingest function, written the usual way with Powertools for AWS Lambda (Python):
an APIGatewayRestResolver route, JSON Schema validation, a signed envelope per event and
SQS SendMessageBatch. Only here to be timed next to Sluice's Rust ingest function."""
import base64
import hashlib
import hmac
import json
import os
import uuid
from datetime import datetime, timezone

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.validation import SchemaValidationError, validate

logger = Logger()
app = APIGatewayRestResolver()
sqs = boto3.client("sqs")
QUEUE_URL = os.environ["QUEUE_URL"]
SECRET = base64.b64decode(os.environ["SIGNING_KEY_B64"])

EVENT = {
    "type": "object",
    "required": ["type", "data"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,127}$"},
        "data": {},
        "occurred_at": {"type": "string", "format": "date-time"},
    },
}
BATCH = {"type": "array", "minItems": 1, "maxItems": 100, "items": EVENT}


@app.post("/v1/events")
def post_events():
    body = app.current_event.json_body
    events = body if isinstance(body, list) else [body]
    try:
        validate(event=events, schema=BATCH)
    except SchemaValidationError as e:
        return Response(422, "application/problem+json", json.dumps({"title": "invalid", "detail": str(e)[:200]}))
    tenant = app.current_event.request_context.authorizer.get("tenant", "")
    now = datetime.now(timezone.utc).isoformat()
    ids, entries = [], []
    for i, e in enumerate(events):
        event_id = "evt_" + uuid.uuid4().hex
        ids.append(event_id)
        envelope = json.dumps({"v": 1, "id": event_id, "tenant": tenant, "type": e["type"], "data": e["data"],
                               "occurred_at": e.get("occurred_at", now), "received_at": now,
                               "request_id": app.current_event.request_context.request_id})
        sig = hmac.new(SECRET, envelope.encode(), hashlib.sha256).hexdigest()
        entries.append({"Id": str(i), "MessageBody": envelope,
                        "MessageAttributes": {"signature": {"DataType": "String", "StringValue": sig}}})
    for start in range(0, len(entries), 10):
        sqs.send_message_batch(QueueUrl=QUEUE_URL, Entries=entries[start:start + 10])
    logger.info("accepted", extra={"count": len(ids)})
    payload = {"id": ids[0]} if not isinstance(body, list) else {"ids": ids}
    return Response(202, "application/json", json.dumps(payload))


@logger.inject_lambda_context
def lambda_handler(event, context):
    return app.resolve(event, context)
