"""Creates what the cold-start runs need in a moto server: the queue and its DLQ, the three
tables (same keys as sluice-aws's provisioning), the signing and cursor key rings in SSM, and the
first event of each function (from sluice-lambda's fixtures, placeholders filled in; the SQS
record is sealed with the signing key so the process functions do a real put).

usage: provision.py ENDPOINT OUT_DIR   (writes OUT_DIR/env and OUT_DIR/<function>.json)
"""
import base64, hashlib, hmac, json, os, sys, time, uuid
import boto3

endpoint, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
sqs, ddb, ssm = boto3.client("sqs", **kw), boto3.client("dynamodb", **kw), boto3.client("ssm", **kw)

dlq = sqs.create_queue(QueueName="bench-events-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue = sqs.create_queue(QueueName="bench-events", Attributes={
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]

def table(name, sort):
    keys = [("pk", "HASH")] + ([("sk", "RANGE")] if sort else [])
    try:
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                         KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys])
    except ddb.exceptions.ResourceInUseException:
        pass
table("bench-events", True)
table("bench-idempotency", False)
table("bench-keys", False)
table("bench-sources", False)

secret = bytes(range(32))
ring = "k1:" + base64.b64encode(secret).decode()
for name in ("/sluice/bench/signing", "/sluice/bench/cursor"):
    ssm.put_parameter(Name=name, Value=ring, Type="SecureString", Overwrite=True)

env = {
    "SLUICE_QUEUE_URL": queue, "SLUICE_DLQ_URL": dlq, "SLUICE_TABLE": "bench-events",
    "SLUICE_IDEMPOTENCY_TABLE": "bench-idempotency", "SLUICE_KEYS_TABLE": "bench-keys",
    "SLUICE_SOURCES_TABLE": "bench-sources",
    "SLUICE_SIGNING_KEY_PARAM": "/sluice/bench/signing", "SLUICE_CURSOR_KEY_PARAM": "/sluice/bench/cursor",
    "AWS_ENDPOINT_URL": endpoint,
    # The Python references' names for the same things.
    "QUEUE_URL": queue, "TABLE_NAME": "bench-events", "SIGNING_KEY_B64": base64.b64encode(secret).decode(),
    "POWERTOOLS_SERVICE_NAME": "sluice-reference", "POWERTOOLS_LOG_LEVEL": "WARNING",
}
with open(os.path.join(out, "env"), "w") as f:
    for k, v in env.items():
        f.write(f"{k}={v}\n")

fixtures = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "sluice-lambda", "tests", "fixtures")
def fixture(name, **subs):
    with open(os.path.join(fixtures, name)) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace(f"__{k}__", v)
    return json.loads(text)

# One sealed record, as the ingest function would have sent it.
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
ulid_chars = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ms = int(time.time() * 1000)
ts = "".join(ulid_chars[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
event_id = "evt_" + ts + "".join(ulid_chars[b % 32] for b in os.urandom(16))
envelope = {"v": 1, "id": event_id, "tenant": "bench", "type": "order.created", "data": {"amount": 42},
            "occurred_at": now, "received_at": now, "request_id": "req-bench-1", "source_ip": "203.0.113.7"}
key_id = "key_01jbench0000000000000000000"
ids = dict(TENANT="bench", KEY_ID=key_id, EVENT_ID=event_id, AUTHORIZATION="Bearer " + key_id + ".notarealsecret")
events = {
    "authorizer": fixture("authorizer-rest-request.json", **ids),
    "ingest": fixture("ingest-rest-post.json", **ids),
    "query": fixture("query-rest-get.json", **ids),
}
events["ingest"]["body"] = json.dumps({"type": "order.created", "data": {"amount": 42, "currency": "EUR"}})
events["ingest"]["isBase64Encoded"] = False

body = json.dumps(envelope, separators=(",", ":"))
sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
attrs = {"request_id": "req-bench-1", "received_at": now, "source_ip": "203.0.113.7", "tenant": "bench",
         "event_id": event_id, "signature": sig, "signature_kid": "k1"}
sqs_event = fixture("sqs-event.json", **ids)
record = sqs_event["Records"][0]
record["body"] = body
record["messageId"] = str(uuid.uuid4())
record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:bench-events"
record["messageAttributes"] = {k: {"stringValue": v, "dataType": "String", "stringListValues": [], "binaryListValues": []}
                               for k, v in attrs.items()}
sqs_event["Records"] = [record]
events["process"] = sqs_event
for name, ev in events.items():
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(ev, f)
print(json.dumps({"queue": queue, "event_id": event_id}))
