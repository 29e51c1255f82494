"""The template grants and sets exactly what the function binaries use (E-1, I-1, D-2), deploys the
routes of the HTTP contract (S-1, T-1) with the webhook route open only to signed deliveries the
ingest function verifies (S-6), and lets the ingest role alone read the sources table (I-5).

Run by scripts/check-infra.sh:  python -m pytest infra/tests
Inputs: infra/template.yaml and crates/sluice-lambda/functions.toml (the manifest that
sluice-lambda's tests prove exact against the code). A missing file fails; nothing is skipped.
"""
from pathlib import Path

import pytest

import infra_check as ic

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
MANIFEST = ROOT / "crates" / "sluice-lambda" / "functions.toml"
FIXTURE = ROOT / "infra" / "tests" / "manifest"
PROBLEMS_MD = (ROOT / "docs" / "problems.md").read_text()


@pytest.fixture(scope="module")
def template():
    return ic.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def manifest():
    return ic.load_manifest(MANIFEST)


def drift(t, manifest, base):
    """Problems of the mutated template `t` that the unmutated `base` does not have, so that each
    mutation test shows only its own drift even while the real pair is out of step."""
    before = set(ic.check(base, manifest))
    return [p for p in ic.check(t, manifest) if p not in before]


def statement(t, role, sid):
    for policy in t["Resources"][role]["Properties"]["Policies"]:
        for s in policy["PolicyDocument"]["Statement"]:
            if isinstance(s, dict) and s.get("Sid") == sid:
                return s
    raise KeyError(sid)


def env(t, function):
    return t["Resources"][function]["Properties"]["Environment"]["Variables"]


def test_e1_template_matches_the_function_manifest(template, manifest):
    assert ic.check(template, manifest) == []


def test_e1_every_manifest_function_is_deployed_with_its_binary(template, manifest):
    binaries = {
        r["Metadata"]["BuildProperties"]["Binary"]
        for r in template["Resources"].values()
        if r.get("Type") == "AWS::Serverless::Function"
    }
    assert binaries == {s.binary for s in manifest.values()}
    assert {"sluice-authorizer", "sluice-ingest", "sluice-process", "sluice-query"} <= binaries


def test_short_tags_parse_to_long_forms(template):
    ingest = template["Resources"]["IngestFunction"]["Properties"]
    assert ingest["Role"] == {"Fn::GetAtt": ["IngestRole", "Arn"]}
    assert env(template, "IngestFunction")["SLUICE_QUEUE_URL"] == {"Ref": "EventsQueue"}
    assert "Fn::If" in ingest["VpcConfig"]
    assert "Fn::Sub" in statement(template, "IngestRole", "AppSigningKey")["Resource"]


def test_e1_missing_permission_fails(template, manifest):
    t = ic.mutated(template)
    statement(t, "QueryRole", "AppReadEvents")["Action"] = ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
    assert drift(t, manifest, template) == [
        "QueryFunction (query): role QueryRole lacks dynamodb:Query, which the function needs"
    ]


def test_e1_unused_permission_fails(template, manifest):
    t = ic.mutated(template)
    statement(t, "IngestRole", "AppIdempotency")["Action"].append("dynamodb:DeleteItem")
    assert drift(t, manifest, template) == [
        "IngestFunction (ingest): role IngestRole grants dynamodb:DeleteItem, which no code of the function uses"
    ]


def test_e1_wildcard_action_is_an_unused_permission(template, manifest):
    t = ic.mutated(template)
    statement(t, "ProcessRole", "AppWriteEvents")["Action"] = ["dynamodb:*"]
    problems = drift(t, manifest, template)
    assert "ProcessFunction (process): role ProcessRole grants dynamodb:*, which no code of the function uses" in problems
    assert "ProcessFunction (process): role ProcessRole lacks dynamodb:PutItem, which the function needs" in problems


def test_e1_permission_in_a_separate_policy_resource_counts(template, manifest):
    t = ic.mutated(template)
    t["Resources"]["ExtraPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "extra",
            "Roles": [{"Ref": "AuthorizerRole"}],
            "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": "x"}]},
        },
    }
    assert drift(t, manifest, template) == [
        "AuthorizerFunction (authorizer): role AuthorizerRole grants dynamodb:Scan, which no code of the function uses"
    ]


def test_e1_trigger_actions_only_with_a_trigger(template, manifest):
    t = ic.mutated(template)
    del t["Resources"]["ProcessFunction"]["Properties"]["Events"]
    problems = drift(t, manifest, template)
    assert "ProcessFunction (process): the manifest lists trigger_actions but the template gives it no trigger" in problems
    assert "ProcessFunction (process): role ProcessRole grants sqs:ReceiveMessage, which no code of the function uses" in problems


def test_e1_vpc_actions_only_in_vpc_mode(template, manifest):
    t = ic.mutated(template)
    statement(t, "QueryRole", "PlatformTracing")["Action"].append("ec2:CreateNetworkInterface")
    problems = drift(t, manifest, template)
    assert any("VPC actions granted outside an Fn::If" in p for p in problems)


def test_e1_shared_role_fails(template, manifest):
    t = ic.mutated(template)
    t["Resources"]["QueryFunction"]["Properties"]["Role"] = {"Fn::GetAtt": ["ProcessRole", "Arn"]}
    problems = drift(t, manifest, template)
    assert "QueryFunction (query): shares role ProcessRole with ProcessFunction (process)" in problems


def test_e1_sam_generated_role_fails(template, manifest):
    t = ic.mutated(template)
    props = t["Resources"]["IngestFunction"]["Properties"]
    del props["Role"]
    props["Policies"] = ["AWSLambdaBasicExecutionRole"]
    assert drift(t, manifest, template) == [
        "IngestFunction (ingest): no role of its own (Role must be !GetAtt <Role>.Arn of this template)"
    ]


def test_i1_env_var_drift_fails(template, manifest):
    t = ic.mutated(template)
    del env(t, "ProcessFunction")["SLUICE_TABLE"]
    env(t, "AuthorizerFunction")["SLUICE_DEBUG"] = "1"
    assert drift(t, manifest, template) == [
        "AuthorizerFunction (authorizer): env SLUICE_DEBUG is set but the code never reads it",
        "ProcessFunction (process): env SLUICE_TABLE is read by the code but not set",
    ]


def test_d2_visibility_timeout_below_six_times_process_timeout_fails(template, manifest):
    t = ic.mutated(template)
    t["Resources"]["ProcessFunction"]["Properties"]["Timeout"] = 31
    assert drift(t, manifest, template) == [
        "ProcessFunction (process): queue EventsQueue visibility timeout 180s is under six times the function timeout 31s"
    ]


def test_e1_fixture_pair_fails_with_every_planted_drift():
    problems = ic.check(ic.load_template(FIXTURE / "template.yaml"), ic.load_manifest(FIXTURE / "functions.toml"))
    assert problems == [
        "function ExportFunction: binary 'sluice-export' is not in the manifest",
        "manifest function process (sluice-process) is not in the template",
        "IngestFunction (ingest): role IngestRole grants dynamodb:DeleteItem, which no code of the function uses",
        "QueryFunction (query): env SLUICE_CURSOR_KEY_PARAM is read by the code but not set",
        "QueryFunction (query): env SLUICE_DEBUG is set but the code never reads it",
        "QueryFunction (query): role QueryRole lacks dynamodb:Query, which the function needs",
    ]


def test_missing_manifest_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError):
        ic.load_manifest(tmp_path / "functions.toml")


def _substituted(text):
    """A VTL template with every $context variable replaced by a plain value."""
    import re

    return re.sub(r"\$context\.[A-Za-z0-9_.]+", "x", text)


def test_i2_gateway_responses_are_problem_json(template):
    import json

    responses = template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    assert {"DEFAULT_4XX", "DEFAULT_5XX", "UNAUTHORIZED", "ACCESS_DENIED", "THROTTLED"} <= set(responses)
    for name, r in responses.items():
        body = json.loads(_substituted(r["responseTemplates"]["application/json"]))
        assert set(body) == {"type", "title", "status", "code", "request_id"}, name
        assert body["type"] == "about:blank", name  # the code identifies it (docs/problems.md)
        assert f'<a id="{body["code"]}"></a>' in PROBLEMS_MD, name
        if "statusCode" in r:
            assert int(r["statusCode"]) == body["status"], name
        assert r["responseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
    # Every credential failure looks the same to the caller (S-1, I-2), an unusable usage-plan key included.
    bodies = {
        n: responses[n]["responseTemplates"]["application/json"]
        for n in ("UNAUTHORIZED", "ACCESS_DENIED", "INVALID_API_KEY")
    }
    assert len(set(bodies.values())) == 1


def test_r1_access_log_is_one_json_object_with_the_audit_fields(template):
    import json

    fmt = template["Resources"]["SluiceApi"]["Properties"]["AccessLogSetting"]["Format"]
    assert "\n" not in fmt
    record = json.loads(_substituted(fmt))
    # Short keys (infra/README.md, "Access logs"): request id, source IP, tenant, key id, SigV4 caller, status.
    assert {"id", "ip", "tn", "key", "s", "c"} <= set(record)
    assert '"tn":"$context.authorizer.tenant"' in fmt and '"ip":"$context.identity.sourceIp"' in fmt


def test_s2_each_queue_admits_only_its_writer(template):
    resources = template["Resources"]
    policies = {}
    for name, r in resources.items():
        if r["Type"] == "AWS::SQS::QueuePolicy":
            for q in r["Properties"]["Queues"]:
                policies[q["Ref"]] = r["Properties"]["PolicyDocument"]["Statement"]
    queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    assert set(policies) == queues, "every queue has a resource policy"
    writers = {"EventsQueue": "IngestRole", "EventsDlq": "ProcessRole"}
    for queue, statements in policies.items():
        allows = [s for s in statements if s["Effect"] == "Allow"]
        assert [s["Principal"] for s in allows] == [{"AWS": {"Fn::GetAtt": [writers[queue], "Arn"]}}], queue
        assert all(s["Action"] == "sqs:SendMessage" for s in allows), queue
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)
    deny_others = [s for s in policies["EventsQueue"] if s.get("Sid") == "NobodyElseSends"]
    assert deny_others and deny_others[0]["Principal"] == "*" and deny_others[0]["Effect"] == "Deny"


def test_every_resource_names_the_threats_it_mitigates():
    import re

    lines = TEMPLATE.read_text(encoding="utf-8").split("\n")
    start = lines.index("Resources:")
    end = lines.index("Outputs:")
    missing = []
    for i in range(start + 1, end):
        if re.match(r"^  [A-Za-z0-9]+:\s*$", lines[i]):
            j = i - 1
            while j > start and lines[j].strip() == "":
                j -= 1
            block = []
            while j > start and lines[j].startswith("  #"):
                block.append(lines[j])
                j -= 1
            if not re.search(r"\b[STRDIE]-[1-4]\b", " ".join(block)):
                missing.append(lines[i].strip())
    assert missing == []


OPENAPI = ROOT / "crates" / "sluice-http" / "src" / "openapi.json"
OPENAPI_RS = ROOT / "crates" / "sluice-http" / "src" / "openapi.rs"


def _resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        section, name = node["$ref"].split("/")[-2:]
        node = doc["components"][section][name]
    return node


def _params(op, doc):
    return {(p["name"].lower(), p["in"]) for p in (_resolve(doc, p) for p in op.get("parameters") or [])}


def test_t1_api_routes_and_models_match_the_openapi_contract(template):
    import json

    contract = json.loads(OPENAPI.read_text(encoding="utf-8"))
    body = template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]

    # The contract describes exactly the routes the code serves (ROUTES), and every one of them is deployed
    # but those `sluice serve` alone serves (its health check and document, and the feed's event stream,
    # which cannot stream on AWS); nothing else is.
    served = ic.code_routes(OPENAPI_RS)
    documented = {(path, m) for path, ops in contract["paths"].items() for m in ops}
    assert documented == served, "openapi.json and ROUTES in openapi.rs disagree"
    assert SERVE_ONLY <= served
    deployed = set(ic.api_operations(template))
    assert deployed == served - SERVE_ONLY
    for path, method in sorted(deployed):
        ours, theirs = body["paths"][path][method], contract["paths"][path][method]
        assert _params(ours, body) == _params(theirs, contract), (path, method)
        # Without an authorizer exactly where the contract has no credential (S-1, S-6).
        assert (ours.get("security") == []) == (theirs.get("security") == []), (path, method)

    ours, theirs = body["components"]["schemas"], contract["components"]["schemas"]
    assert ours["Submission"]["oneOf"][1]["maxItems"] == theirs["Submission"]["oneOf"][1]["maxItems"]
    assert ours["NewEvent"]["required"] == theirs["NewEvent"]["required"]
    assert ours["NewEvent"]["additionalProperties"] is theirs["NewEvent"]["additionalProperties"] is False
    assert set(ours["NewEvent"]["properties"]) == set(theirs["NewEvent"]["properties"])
    event_type = theirs["EventType"]
    for key in ("pattern", "maxLength", "minLength"):
        assert ours["NewEvent"]["properties"]["type"][key] == event_type[key], key
    delivery = contract["paths"][WEBHOOK[0]][WEBHOOK[1]]["requestBody"]["content"]["application/json"]["schema"]
    assert ours["Delivery"]["type"] == delivery["type"] == "object"

    # An erasure names one subject, as an event's subject is bounded (T-1).
    erasure = ours["ErasureRequest"]
    assert erasure["required"] == ["subject"] and erasure["additionalProperties"] is False
    assert set(erasure["properties"]) == {"subject"}
    subject = erasure["properties"]["subject"]
    assert subject == {"type": "string", "minLength": 1, "maxLength": ours["NewEvent"]["properties"]["subject"]["maxLength"]}
    theirs = _resolve(contract, contract["paths"][ERASURES[0]][ERASURES[1]]["requestBody"]["content"]["application/json"]["schema"])
    assert set(theirs["required"]) == set(erasure["required"])
    assert theirs["additionalProperties"] is False
    assert set(theirs["properties"]) == set(erasure["properties"])
    theirs_subject = _resolve(contract, theirs["properties"]["subject"])
    assert (theirs_subject["minLength"], theirs_subject["maxLength"]) == (subject["minLength"], subject["maxLength"])


def test_t1_cloudevents_binary_mode_bodies_pass_the_gateway(template):
    """A binary-mode CloudEvent's body is its `data`, any JSON value: API Gateway must not hold it to
    the native Submission model (it would answer 400 to a valid event), so POST /v1/events validates
    its headers only; every other body is still validated against its model (T-1)."""
    body = template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]
    validators = body["x-amazon-apigateway-request-validators"]
    events = body["paths"]["/v1/events"]["post"]
    assert validators[events["x-amazon-apigateway-request-validator"]] == {
        "validateRequestBody": False,
        "validateRequestParameters": True,
    }
    assert any(p["name"] == "ce-specversion" for p in events["parameters"])
    others = [
        op
        for path, ops in body["paths"].items()
        for op in ops.values()
        if "requestBody" in op and path != "/v1/events"
    ]
    assert others, "the webhook route has a body"
    for op in others:
        assert validators[op["x-amazon-apigateway-request-validator"]]["validateRequestBody"] is True


WEBHOOK = ("/v1/sources/{source_id}", "post")
ERASURES = ("/v1/erasures", "post")
SERVE_ONLY = ic.SERVE_ONLY


def test_s6_webhook_route_has_no_authorizer_but_is_throttled_and_integrated_with_ingest(template):
    import fnmatch
    import re

    resources = template["Resources"]
    api = resources["SluiceApi"]["Properties"]
    ops = ic.api_operations(template)
    op = ops[WEBHOOK]
    # The provider's signature over the raw body is the credential, and an authorizer never sees the
    # body; every other method keeps its authorizer (S-1).
    assert op["security"] == []
    assert [route for route, o in ops.items() if not o.get("security")] == [WEBHOOK]

    integration = op["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy"
    assert re.fullmatch(
        r"arn:\$\{AWS::Partition\}:apigateway:\$\{AWS::Region\}:lambda:path/2015-03-31/functions/"
        r"\$\{IngestFunction\.Arn\}/invocations",
        integration["uri"]["Fn::Sub"],
    )
    assert [(p["name"], p["required"]) for p in op["parameters"] if p["in"] == "path"] == [("source_id", True)]
    validator = op["x-amazon-apigateway-request-validator"]
    assert api["DefinitionBody"]["x-amazon-apigateway-request-validators"][validator] == {
        "validateRequestBody": True,
        "validateRequestParameters": True,
    }
    assert op["requestBody"]["required"] is True

    # D-1: a method throttle of its own, with its own parameters, and no body in execution logs (I-1).
    settings = [
        m for m in api["MethodSettings"] if (m["ResourcePath"], m["HttpMethod"]) == ("/~1v1~1sources~1{source_id}", "POST")
    ]
    assert len(settings) == 1
    assert settings[0]["ThrottlingRateLimit"] == {"Ref": "WebhookRateLimit"}
    assert settings[0]["ThrottlingBurstLimit"] == {"Ref": "WebhookBurstLimit"}
    assert settings[0]["DataTraceEnabled"] is False
    for name in ("WebhookRateLimit", "WebhookBurstLimit"):
        assert template["Parameters"][name]["MinValue"] >= 1, name
    # the stage's access log covers it and names the source the delivery was posted to.
    assert "$context.path" in api["AccessLogSetting"]["Format"]

    # E-1: API Gateway may invoke the ingest function on this route, and no other function.
    arn = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${SluiceApi}/prod/POST/v1/sources/src_x"
    invokers = {
        r["Properties"]["FunctionName"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and fnmatch.fnmatchcase(arn, r["Properties"]["SourceArn"]["Fn::Sub"])
    }
    assert invokers == {"IngestFunction"}


def test_i5_only_the_ingest_role_reads_the_sources_table(template):
    resources = template["Resources"]
    assert env(template, "IngestFunction")["SLUICE_SOURCES_TABLE"] == {"Ref": "SourcesTable"}
    assert resources["SourcesTable"]["Properties"]["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Ref": "PipelineKey"},
    }
    assert statement(template, "IngestRole", "AppReadSources") == {
        "Sid": "AppReadSources",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem"],
        "Resource": {"Fn::GetAtt": ["SourcesTable", "Arn"]},
    }
    assert ic.table_access(template, "SourcesTable", "IngestRole", {"dynamodb:GetItem"}) == []
    # Spelled out for the three other functions' roles: no statement names the table, and none of their
    # DynamoDB statements could reach it through a wildcard.
    for role in ("AuthorizerRole", "ProcessRole", "QueryRole"):
        stmts, problems = ic.role_statements(template, role)
        assert problems == [], role
        for s, _conditional in stmts:
            assert not ic.refers_to(s.get("Resource"), "SourcesTable"), (role, s.get("Sid"))
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            if any(a == "*" or a.startswith("dynamodb:") for a in actions):
                assert "NotResource" not in s, (role, s.get("Sid"))
                assert not [x for x in ic.strings_in(s["Resource"]) if "*" in x], (role, s.get("Sid"))


def sources_access(t):
    return ic.table_access(t, "SourcesTable", "IngestRole", {"dynamodb:GetItem"})


def app_statements(t, role):
    return t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def read(sid, resource):
    return {"Sid": sid, "Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": resource}


def test_i5_another_role_naming_the_sources_table_fails(template):
    t = ic.mutated(template)
    app_statements(t, "QueryRole").append(read("AppReadSources", {"Fn::Sub": "${SourcesTable.Arn}"}))
    vpc_only = read("Vpc", [{"Ref": "SourcesTable"}])
    app_statements(t, "ProcessRole").append({"Fn::If": ["VpcMode", vpc_only, {"Ref": "AWS::NoValue"}]})
    t["Resources"]["ExtraPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "extra",
            "Roles": [{"Ref": "AuthorizerRole"}],
            "PolicyDocument": {"Statement": [read("Extra", {"Fn::GetAtt": "SourcesTable.Arn"})]},
        },
    }
    assert sources_access(t) == [
        "AuthorizerRole: statement Extra refers to SourcesTable",
        "ProcessRole: statement Vpc refers to SourcesTable",
        "QueryRole: statement AppReadSources refers to SourcesTable",
    ]


def test_i5_wildcard_dynamodb_resource_fails(template):
    t = ic.mutated(template)
    statement(t, "ProcessRole", "AppWriteEvents")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"
    }
    query = statement(t, "QueryRole", "AppReadEvents")
    query["NotResource"] = query.pop("Resource")
    assert sources_access(t) == [
        "ProcessRole: statement AppWriteEvents grants ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'] "
        "on wildcard resource ['arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*']",
        "QueryRole: statement AppReadEvents grants ['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query'] "
        "on NotResource",
    ]


def test_i5_ingest_listing_or_writing_sources_fails(template):
    t = ic.mutated(template)
    statement(t, "IngestRole", "AppReadSources")["Action"] += ["dynamodb:Scan", "dynamodb:PutItem"]
    assert sources_access(t) == [
        "IngestRole: grants dynamodb:PutItem on SourcesTable, only ['dynamodb:GetItem'] is allowed",
        "IngestRole: grants dynamodb:Scan on SourcesTable, only ['dynamodb:GetItem'] is allowed",
    ]


def test_d3_process_function_is_updated_before_ingest(template):
    # An older process function refuses events in a newer shape (such as one with a subject) and they
    # end in the DLQ; CloudFormation updates a resource only after those it depends on.
    depends = template["Resources"]["IngestFunction"].get("DependsOn")
    assert "ProcessFunction" in (depends if isinstance(depends, list) else [depends])


# ------------------------------------------------------------------------------------------------ the feed

FEED_RS = ROOT / "crates" / "sluice-core" / "src" / "feed.rs"
ENV_RS = ROOT / "crates" / "sluice-host" / "src" / "env.rs"
FEED_ROUTE = ("/v1/feed", "get")
# API Gateway's longest integration timeout (REST, without a quota increase) and an HTTP API's.
REST_INTEGRATION_LIMIT_MS = 29_000
HTTP_INTEGRATION_LIMIT_MS = 30_000


def max_wait_secs():
    import re

    m = re.search(r"pub const MAX_WAIT_SECS: u64 = (\d+);", FEED_RS.read_text(encoding="utf-8"))
    assert m, f"{FEED_RS} has no MAX_WAIT_SECS"
    return int(m.group(1))


def test_d2_the_query_timeout_lets_the_long_poll_finish_inside_the_integration_limit(template):
    """GET /v1/feed waits up to MAX_WAIT_SECS and then reads once more; the function must outlive the wait
    (a cold start, the cursor key and the last read take a few seconds) and API Gateway must outlive the
    function, whose timeout then ends a stuck request with a 5xx of its own instead of a gateway 504."""
    wait = max_wait_secs()
    timeout = template["Resources"]["QueryFunction"]["Properties"]["Timeout"]
    assert isinstance(timeout, int)
    assert timeout >= wait + 5, f"Timeout {timeout}s leaves less than 5 s after a {wait} s long-poll"
    assert timeout * 1000 < REST_INTEGRATION_LIMIT_MS
    ops = ic.api_operations(template)
    for route in (FEED_ROUTE, ERASURES):
        integration = ops[route]["x-amazon-apigateway-integration"]
        assert timeout * 1000 < integration["timeoutInMillis"] <= REST_INTEGRATION_LIMIT_MS, route
    # Every other query route keeps the short timeout of the routes before it.
    for route, op in ops.items():
        if route not in (FEED_ROUTE, ERASURES):
            assert op["x-amazon-apigateway-integration"]["timeoutInMillis"] == 10_000, route
    long = template["Resources"]["HttpQueryLongIntegration"]["Properties"]["TimeoutInMillis"]
    assert timeout * 1000 < long <= HTTP_INTEGRATION_LIMIT_MS
    # The process function's queue still outlasts it six times over (D-2), unchanged by the query timeout.
    assert template["Resources"]["EventsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * template["Resources"][
        "ProcessFunction"
    ]["Properties"]["Timeout"]


def test_the_feed_stream_is_served_by_sluice_serve_and_not_routed_on_aws(template):
    import fnmatch

    # The code serves it (sluice serve streams it; on Lambda it answers 404 pointing at the long-poll) ...
    assert ic.FEED_STREAM in ic.code_routes(OPENAPI_RS)
    # ... and neither API variant routes it, nor may API Gateway invoke a function for it.
    path, method = ic.FEED_STREAM
    assert path not in template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]["paths"]
    keys = {r["Properties"]["RouteKey"] for r in ic.of_type(template, "AWS::ApiGatewayV2::Route").values()}
    assert f"{method.upper()} {path}" not in keys
    assert not [k for k in keys if "stream" in k]
    for api in ("SluiceApi", "HttpApi"):
        arn = f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api}}}/prod/GET{path}"
        invokers = [
            n
            for n, r in ic.of_type(template, "AWS::Lambda::Permission").items()
            if fnmatch.fnmatchcase(arn, r["Properties"]["SourceArn"]["Fn::Sub"])
        ]
        assert invokers == [], (api, invokers)
    # The long-poll is routed, to the query function.
    uri = ic.api_operations(template)[FEED_ROUTE]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert "${QueryFunction.Arn}" in uri
    # The operator is told (infra/README.md).
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    assert "`GET /v1/feed/stream`" in readme and "not routed on AWS" in readme


def test_d4_i3_process_and_query_share_the_layout_and_retention_parameters(template):
    process, query = env(template, "ProcessFunction"), env(template, "QueryFunction")
    for var, param in (
        ("SLUICE_EVENT_SHARDS", "EventShards"),
        ("SLUICE_RETENTION_DAYS", "RetentionDays"),
        ("SLUICE_RETENTION_BY_TYPE", "RetentionByType"),
    ):
        assert process[var] == query[var] == {"Ref": param}, var
    assert process["SLUICE_TABLE"] == query["SLUICE_TABLE"]
    assert query["SLUICE_IDEMPOTENCY_TABLE"] == env(template, "IngestFunction")["SLUICE_IDEMPOTENCY_TABLE"]
    # The CLI's AWS backend reads the same table with the same layout (infra/README.md, step 4).
    outputs = template["Outputs"]
    assert outputs["EventsTableShards"]["Value"] == {"Ref": "EventShards"}
    assert outputs["EventsTableShards"]["Description"].startswith("SLUICE_EVENT_SHARDS")
    assert outputs["EventsTableName"]["Value"] == process["SLUICE_TABLE"]


def test_d4_i3_layout_and_retention_parameters_allow_what_the_functions_accept(template):
    import re

    params = template["Parameters"]
    env_rs = ENV_RS.read_text(encoding="utf-8")
    # The ranges sluice-host's env.rs accepts: a value the template allows must not stop the functions' init.
    assert "(1..=256).contains(n)" in env_rs and "(1..=3650).contains(d)" in env_rs
    shards = params["EventShards"]
    assert (shards["Type"], shards["Default"], shards["MinValue"], shards["MaxValue"]) == ("Number", 32, 1, 256)
    days = params["RetentionDays"]
    assert (days["Type"], days["Default"], days["MinValue"], days["MaxValue"]) == ("Number", 30, 1, 3650)
    by_type = params["RetentionByType"]
    assert (by_type["Type"], by_type["Default"]) == ("String", "")
    pattern = re.compile(by_type["AllowedPattern"])
    for ok in ("", "audit.login=365", "audit.login=365,debug.trace=1", "a=3650", "a_b-c.d=1000", "x=99"):
        assert pattern.fullmatch(ok), ok
    for bad in ("a=0", "a=3651", "a=10000", "A=1", "1a=1", "a=01", "a=1,", ",a=1", "a = 1", "a=1,,b=2", "a"):
        assert not pattern.fullmatch(bad), bad


def test_i3_the_events_table_expires_events_by_ttl_and_keeps_its_keys(template):
    name = env(template, "ProcessFunction")["SLUICE_TABLE"]["Ref"]
    table = template["Resources"][name]
    p = table["Properties"]
    assert p.get("TimeToLiveSpecification") == {"AttributeName": "ttl", "Enabled": True}
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]
    # Retained: the cut-over to this release's layout is a new table beside the old one (infra/README.md).
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert p["DeletionProtectionEnabled"] is True
    assert name != "EventsTable", "the previous release's table (pk = tenant) is not readable by this one"
    assert "EventsTable" not in template["Resources"]


def table_actions(t, role):
    """{table logical name: actions} the role's statements grant on each table of the template."""
    tables = ic.of_type(t, "AWS::DynamoDB::Table")
    stmts, problems = ic.role_statements(t, role)
    assert problems == [], role
    out = {}
    for s, _conditional in stmts:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for table in tables:
            if ic.refers_to(s.get("Resource"), table):
                out.setdefault(table, set()).update(a for a in actions if a.startswith("dynamodb:"))
    return {k: v for k, v in out.items() if v}


def test_e1_each_role_has_exactly_the_feeds_actions_on_each_table(template):
    events = env(template, "ProcessFunction")["SLUICE_TABLE"]["Ref"]
    assert table_actions(template, "ProcessRole") == {
        # Conditional puts of each event's pointer and slot, the counter's block, a redelivery's reads.
        events: {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
    }
    assert table_actions(template, "QueryRole") == {
        # Reads, and a deletion's updates and puts: no item of the events table is ever deleted
        # (crates/sluice-aws/src/dynamo/feed.rs), so DeleteItem is granted on the idempotency table alone.
        events: {
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        },
        # A deleted event's idempotency record is forgotten: nothing else on that table.
        "IdempotencyTable": {"dynamodb:DeleteItem"},
    }
    # Which the store's code confirms: no DeleteItem on the events table, and no transaction (which IAM would
    # authorize item by item, Delete included) in the adapters that use it.
    for name in ("feed.rs", "events.rs", "mod.rs"):
        code = (ROOT / "crates" / "sluice-aws" / "src" / "dynamo" / name).read_text(encoding="utf-8")
        assert ".delete_item()" not in code and ".transact_write_items()" not in code, name
    assert table_actions(template, "IngestRole") == {
        "IdempotencyTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        "SourcesTable": {"dynamodb:GetItem"},
    }
    assert table_actions(template, "AuthorizerRole") == {"KeysTable": {"dynamodb:GetItem"}}


def test_i3_vpc_mode_admits_every_table_action_the_roles_use(template):
    """In VPC mode every DynamoDB call goes through the gateway endpoint, whose policy admits only named
    actions on this stack's tables: each action a role is granted on a table must be admitted there, or the
    listing's batch reads (BatchGetItem) and a deletion's forgetting of its idempotency record (DeleteItem)
    would be refused in VPC mode only."""
    endpoint = template["Resources"]["DynamoDbEndpoint"]["Properties"]["PolicyDocument"]["Statement"]
    admitted = set()
    tables = ic.of_type(template, "AWS::DynamoDB::Table")
    for s in endpoint:
        assert s["Effect"] == "Allow"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        for table in tables:
            if ic.refers_to(s["Resource"], table):
                admitted |= {(a, table) for a in actions}
    for role in ("AuthorizerRole", "IngestRole", "ProcessRole", "QueryRole"):
        for table, actions in table_actions(template, role).items():
            for a in actions:
                assert (a, table) in admitted, (role, a, table)
    # And nothing that no role uses on the events table.
    used = set().union(*(table_actions(template, r).get(env(template, "ProcessFunction")["SLUICE_TABLE"]["Ref"], set())
                         for r in ("ProcessRole", "QueryRole")))
    events = env(template, "ProcessFunction")["SLUICE_TABLE"]["Ref"]
    assert {a for a, t in admitted if t == events} == used


def test_d4_the_throttle_alarm_watches_the_feeds_writes(template):
    alarm = template["Resources"]["DynamoDbThrottlesAlarm"]["Properties"]
    events = env(template, "ProcessFunction")["SLUICE_TABLE"]["Ref"]
    watched = set()
    for m in alarm["Metrics"]:
        if "MetricStat" in m:
            dims = {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}
            if dims["TableName"] == {"Ref": events}:
                watched.add(dims["Operation"])
            assert f"FILL({m['Id']},0)" in alarm["Metrics"][0]["Expression"], m["Id"]
    # The event writes (pointer and slot), the per-tenant counter (one partition key) and the page reads.
    assert {"PutItem", "UpdateItem", "BatchGetItem", "Query", "GetItem"} <= watched
    assert len([m for m in alarm["Metrics"] if "MetricStat" in m]) <= 10


def test_the_readme_states_the_feeds_write_cost_and_ceiling_as_the_store_does():
    """infra/README.md ("The feed on AWS") gives the write units per event and the per-tenant ceiling that
    crates/sluice-aws/src/dynamo/feed.rs states for its layout: a change of the layout fails here until the
    operator's figures follow it."""
    import re

    code = (ROOT / "crates" / "sluice-aws" / "src" / "dynamo" / "feed.rs").read_text(encoding="utf-8")
    wcu = re.search(r"\*\*([\d.]+) WCU at 1 event per batch, ([\d.]+) at 10\*\*", code)
    per_shard = re.search(r"\*\*([\d,]+) × shards events/s\*\*", code)
    per_batch = re.search(r"\*\*([\d,]+) × batch size events/s\*\*", code)
    assert wcu and per_shard and per_batch, "feed.rs no longer states its write cost and ceiling as expected"
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    # Words as a reader sees them, whatever the line breaks.
    section = " ".join(readme.split("## The feed on AWS", 1)[1].split("\n## ", 1)[0].split())
    assert f"**{wcu[1]} write units at 1 event per batch and {wcu[2]} at 10 per batch**" in section
    shard, batch = per_shard[1].replace(",", ""), per_batch[1].replace(",", "")
    assert f"**min({shard} × `EventShards`, {batch} × batch size) events/s**" in section
    # The defaults the section computes with are the template's.
    template = ic.load_template(TEMPLATE)
    shards = template["Parameters"]["EventShards"]["Default"]
    batch_size = template["Parameters"]["ProcessBatchSize"]["Default"]
    assert f"{int(shard) * shards:,} by the shards at the default {shards}" in section
    assert f"{int(batch) * batch_size:,} by the counter at the default `ProcessBatchSize` of {batch_size}" in section
