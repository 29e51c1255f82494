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
    statement(t, "QueryRole", "AppReadEvents")["Action"] = ["dynamodb:GetItem"]
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


def test_t1_api_routes_and_models_match_the_openapi_contract(template):
    import json

    contract = json.loads(OPENAPI.read_text(encoding="utf-8"))
    body = template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]

    def params(op, doc):
        names = set()
        for p in op.get("parameters") or []:
            if "$ref" in p:
                p = doc["components"]["parameters"][p["$ref"].split("/")[-1]]
            names.add((p["name"].lower(), p["in"]))
        return names

    deployed = set(ic.api_operations(template))
    # Every route of the contract is deployed but healthz and openapi.json, which `sluice serve` alone
    # serves; nothing else is.
    routes = {(path, m) for path, ops in contract["paths"].items() for m in ops}
    assert SERVE_ONLY <= routes
    assert deployed == routes - SERVE_ONLY
    for path, method in deployed:
        ours, theirs = body["paths"][path][method], contract["paths"][path][method]
        assert params(ours, body) == params(theirs, contract), (path, method)
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
SERVE_ONLY = {("/healthz", "get"), ("/openapi.json", "get")}


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
        "ProcessRole: statement AppWriteEvents grants ['dynamodb:PutItem'] on wildcard resource "
        "['arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*']",
        "QueryRole: statement AppReadEvents grants ['dynamodb:GetItem', 'dynamodb:Query'] on NotResource",
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
