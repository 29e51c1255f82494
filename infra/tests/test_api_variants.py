"""The two API variants of infra/template.yaml (ApiType REST or HTTP) in front of the same functions.

REST: every method behind the Sluice key authorizer also requires the usage-plan key the authorizer names
(per-tenant throttle and daily quota, D-1, D-2), with exactly two exceptions that run no authorizer (the
webhook route, S-6, and SigV4 ingest). HTTP: exactly the routes the code serves but those `sluice serve`
alone serves (its health check and document, and the feed's event stream), only the webhook route open
(S-1, S-6), each route reaching its function (T-1) with the REST method's integration timeout, route
throttles with the REST variant's parameters (D-1), a JSON access log (R-1), the same custom-domain rule
(S-1). Each variant is rendered as CloudFormation would deploy it (infra_check.render) and checked against
the function manifest (E-1).

Run by scripts/check-infra.sh:  python -m pytest infra/tests
"""
import fnmatch
import importlib.util
import json
import re
from pathlib import Path

import pytest

import infra_check as ic

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
MANIFEST = ROOT / "crates" / "sluice-lambda" / "functions.toml"
OPENAPI = ROOT / "crates" / "sluice-http" / "src" / "openapi.json"
OPENAPI_RS = ROOT / "crates" / "sluice-http" / "src" / "openapi.rs"
README = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")

WEBHOOK_ROUTE = "POST /v1/sources/{source_id}"
SERVE_ONLY = ic.SERVE_ONLY
OPTIONS = {
    "EnableCloudTrail": "true",
    "EnableWaf": "true",
    "CustomDomainName": "events.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "VpcId": "vpc-0123456789abcdef0",
    "VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "VpcRouteTableIds": "rtb-0123456789abcdef0",
    "QueueOperatorArn": "arn:aws:iam::123456789012:role/sluice-operator",
}
JWT = {"HttpApiAuthorizer": "Jwt", "OidcIssuer": "https://issuer.example.com", "OidcAudience": "a,b"}
# Every combination that changes what the API deploys.
VARIANTS = {
    "rest": {},
    "rest-iam": {"IngestAuthorization": "AwsIam"},
    "rest-all-options": {**OPTIONS, "IngestAuthorization": "AwsIam"},
    "http": {"ApiType": "HTTP"},
    "http-iam": {"ApiType": "HTTP", "IngestAuthorization": "AwsIam"},
    "http-all-options": {"ApiType": "HTTP", **OPTIONS, "IngestAuthorization": "AwsIam"},
    "http-jwt": {"ApiType": "HTTP", **JWT},
    "http-jwt-iam": {"ApiType": "HTTP", **JWT, "IngestAuthorization": "AwsIam"},
    "http-jwt-all-options": {"ApiType": "HTTP", **JWT, **OPTIONS},
}
HTTP_VARIANTS = [v for v in VARIANTS if v.startswith("http")]
SHARED_TYPES = {
    "AWS::Serverless::Function",
    "AWS::IAM::Role",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
}
REST_ONLY_TYPES = {
    "AWS::Serverless::Api",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::DomainName",
    "AWS::ApiGateway::BasePathMapping",
    "AWS::ApiGateway::Account",
    "AWS::WAFv2::WebACL",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::WAFv2::LoggingConfiguration",
}


@pytest.fixture(scope="module")
def template():
    return ic.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def manifest():
    return ic.load_manifest(MANIFEST)


@pytest.fixture(scope="module")
def contract():
    return json.loads(OPENAPI.read_text(encoding="utf-8"))


def rendered(template, variant):
    return ic.render(template, VARIANTS[variant])


def types(t):
    return {r["Type"] for r in t["Resources"].values()}


def substituted(text):
    """An access log format with every $context variable replaced by a plain value."""
    return re.sub(r"\$context\.[A-Za-z0-9_.]+", "x", text)


# ------------------------------------------------------------------------------------------------ both


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_deploys_without_a_dangling_reference(template, variant):
    assert ic.dangling_references(rendered(template, variant)) == []


def test_a_reference_to_the_other_variant_is_caught(template):
    t = ic.mutated(template)
    del t["Resources"]["AuthorizerInvokePermission"]["Condition"]  # names ${SluiceApi}
    assert ic.dangling_references(ic.render(t, VARIANTS["http"])) == [
        "Resources.AuthorizerInvokePermission refers to SluiceApi, which this variant does not deploy"
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_e1_each_variant_matches_the_function_manifest(template, manifest, variant):
    # One copy of the functions, roles, queues and tables whatever the API: the same grants and variables.
    # (Fn::If stays as written: the check requires VPC-mode grants to sit inside one.)
    assert ic.check(ic.render(template, VARIANTS[variant], decide_ifs=False), manifest) == []


def test_each_variant_deploys_one_api_in_front_of_the_same_resources(template):
    rest, http = rendered(template, "rest-all-options"), rendered(template, "http-all-options")
    assert not [t for t in types(rest) if t.startswith("AWS::ApiGatewayV2::")]
    assert not types(http) & REST_ONLY_TYPES
    assert not [t for t in types(http) if t.startswith("AWS::ApiGateway::")]
    assert {"AWS::Serverless::Api", "AWS::ApiGateway::UsagePlan", "AWS::WAFv2::WebACL"} <= types(rest)
    assert {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::ApiGatewayV2::DomainName"} <= types(http)
    shared = {n for n, r in template["Resources"].items() if r["Type"] in SHARED_TYPES and "Condition" not in r}
    assert {
        "AuthorizerFunction", "IngestFunction", "ProcessFunction", "QueryFunction",
        "AuthorizerRole", "IngestRole", "ProcessRole", "QueryRole",
        "EventsQueue", "EventsDlq", "EventsTableV2", "IdempotencyTable", "KeysTable", "SourcesTable", "PipelineKey",
    } <= shared
    for name in shared:
        assert rest["Resources"][name] == http["Resources"][name], name
    for name, r in template["Resources"].items():
        if r["Type"] in REST_ONLY_TYPES | {"AWS::Lambda::Permission"} or r["Type"].startswith("AWS::ApiGatewayV2::"):
            assert "Condition" in r, f"{name} is deployed by both variants"


def test_functions_log_json_at_info_and_platform_lines_at_warn(template):
    functions = ic.of_type(template, "AWS::Serverless::Function")
    assert len(functions) == 4
    for name, f in functions.items():
        logging = f["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON", name
        assert logging["ApplicationLogLevel"] == "INFO", name
        # START/END/REPORT platform lines are INFO: not written (every failure still is).
        assert logging["SystemLogLevel"] == "WARN", name


def test_r1_access_logs_are_infrequent_access_retained_and_read_by_nothing(template):
    groups = {"ApiAccessLogGroup": "RestVariant", "HttpApiAccessLogGroup": "HttpVariant"}
    for name, condition in groups.items():
        g = template["Resources"][name]
        assert g["Condition"] == condition
        assert g["DeletionPolicy"] == g["UpdateReplacePolicy"] == "Retain"
        assert g["Properties"]["LogGroupClass"] == "INFREQUENT_ACCESS"
        assert g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert "KmsKeyId" in g["Properties"]
    # The Infrequent Access class has no metric filters or subscriptions: nothing may depend on them.
    readers = ic.of_type(template, "AWS::Logs::MetricFilter", "AWS::Logs::SubscriptionFilter")
    for name, r in readers.items():
        assert not set(groups) & ic.referenced_names(r["Properties"]), name
    # Function logs stay Standard (the Lambda service's log-level filters, Live Tail and the extraction of
    # the functions' EMF metric lines need it; infra/README.md, "Metrics").
    for name in ("AuthorizerLogGroup", "IngestLogGroup", "ProcessLogGroup", "QueryLogGroup"):
        assert "LogGroupClass" not in template["Resources"][name]["Properties"], name


@pytest.mark.parametrize("variant", ["rest-all-options", "http-all-options", "http-jwt-all-options"])
def test_s1_a_custom_domain_closes_the_execute_api_endpoint(template, variant):
    t = rendered(template, variant)
    if variant.startswith("rest"):
        body = t["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]
        assert body["x-amazon-apigateway-endpoint-configuration"]["disableExecuteApiEndpoint"] is True
        assert t["Resources"]["ApiDomain"]["Properties"]["SecurityPolicy"] == "TLS_1_2"
        assert t["Resources"]["ApiDomainMapping"]["Properties"]["RestApiId"] == {"Ref": "SluiceApi"}
    else:
        assert t["Resources"]["HttpApi"]["Properties"]["DisableExecuteApiEndpoint"] is True
        [config] = t["Resources"]["HttpApiDomain"]["Properties"]["DomainNameConfigurations"]
        assert config["SecurityPolicy"] == "TLS_1_2" and config["EndpointType"] == "REGIONAL"
        mapping = t["Resources"]["HttpApiDomainMapping"]["Properties"]
        assert mapping["ApiId"] == {"Ref": "HttpApi"} and mapping["Stage"] == {"Ref": "HttpApiStage"}
    assert t["Outputs"]["ApiUrl"]["Value"] == {"Fn::Sub": "https://${CustomDomainName}"}
    without = rendered(template, variant.replace("-all-options", ""))
    assert not {"ApiDomain", "HttpApiDomain"} & set(without["Resources"])


def test_s1_deploy_time_rules_refuse_a_jwt_authorizer_or_domain_left_unconfigured(template):
    rules = template["Rules"]
    jwt = rules["JwtAuthorizerNeedsIssuer"]
    assert {"Fn::Equals": [{"Ref": "HttpApiAuthorizer"}, "Jwt"]} in jwt["RuleCondition"]["Fn::And"]
    asserted = [a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in jwt["Assertions"]]
    assert asserted == ["OidcIssuer", "OidcAudience"]
    domain = rules["CustomDomainNeedsCertificate"]
    assert domain["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}


def test_api_alarms_and_dashboard_follow_the_variant(template):
    for variant, alarms, dims in (
        ("rest", {"Api5xxAlarm", "Api4xxAlarm"}, "ApiName"),
        ("http", {"HttpApi5xxAlarm", "HttpApi4xxAlarm"}, "ApiId"),
    ):
        t = rendered(template, variant)
        api_alarms = {n for n in ic.of_type(t, "AWS::CloudWatch::Alarm") if "Api" in n}
        assert api_alarms == alarms, variant
        widgets = ic.dashboard_widgets(t)
        api = widgets[0]["properties"]["metrics"]
        assert api[0][2] == dims and len(api[0]) == len(api[1]) == 6, variant
    http = rendered(template, "http")["Resources"]["HttpApi5xxAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in http["Metrics"]}
    assert metrics["e"]["MetricStat"]["Metric"]["MetricName"] == "5xx"
    assert metrics["e"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "ApiId", "Value": {"Ref": "HttpApi"}},
        {"Name": "Stage", "Value": "$default"},
    ]
    assert metrics["c"]["MetricStat"]["Metric"]["MetricName"] == "Count"


# ------------------------------------------------------------------------------------------------ REST


def requirements(op):
    """Every security requirement object of an operation (both branches of a conditional one)."""
    sec = op.get("security", [])
    if isinstance(sec, dict):
        return [r for branch in sec["Fn::If"][1:] for r in branch]
    return list(sec)


def test_d1_every_method_behind_the_key_authorizer_requires_the_usage_plan_key(template):
    body = template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]
    assert body["x-amazon-apigateway-api-key-source"] == "AUTHORIZER"
    schemes = body["components"]["securitySchemes"]
    assert schemes["UsagePlanKey"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert [n for n, s in schemes.items() if s.get("x-amazon-apigateway-authtype") == "custom"] == ["SluiceKey"]
    keyed = []
    for (path, method), op in ic.api_operations(template).items():
        for req in requirements(op):
            if "SluiceKey" in req:
                # Both in one requirement object: the authorizer AND the key, never either.
                assert req == {"SluiceKey": [], "UsagePlanKey": []}, (path, method)
                keyed.append((path, method))
    # Every deployed route of the code but the webhook route: the reads, the feed, deletions and erasures too.
    expected = ic.code_routes(OPENAPI_RS) - SERVE_ONLY - {("/v1/sources/{source_id}", "post")}
    assert set(keyed) == expected
    assert {("/v1/events/{id}", "delete"), ("/v1/feed", "get"), ("/v1/erasures", "post"), ("/v1/erasures/{id}", "get")} <= expected


@pytest.mark.parametrize("variant", ["rest", "rest-iam"])
def test_d1_only_routes_without_an_authorizer_are_outside_the_usage_plans(template, variant):
    # The webhook route and SigV4 ingest run no authorizer, so there is no usage identifier to count.
    t = rendered(template, variant)
    ops = ic.api_operations(t)
    unplanned = sorted(
        (p, m) for (p, m), op in ops.items() if not any("UsagePlanKey" in r for r in op.get("security", []))
    )
    expected = [("/v1/sources/{source_id}", "post")]
    if variant == "rest-iam":
        assert ops[("/v1/events", "post")]["security"] == [{"SigV4": []}]
        expected = [("/v1/events", "post"), *expected]
    assert unplanned == expected
    assert ops[("/v1/sources/{source_id}", "post")]["security"] == []


def test_d1_the_default_usage_plan_limits_each_tenant_on_the_rest_stage(template):
    plan = template["Resources"]["DefaultUsagePlan"]
    assert plan["Condition"] == "RestVariant"
    p = plan["Properties"]
    assert p["ApiStages"] == [{"ApiId": {"Ref": "SluiceApi"}, "Stage": {"Ref": "SluiceApi.Stage"}}]
    assert p["Throttle"] == {"RateLimit": {"Ref": "TenantRateLimit"}, "BurstLimit": {"Ref": "TenantBurstLimit"}}
    assert p["Quota"] == {"Limit": {"Ref": "TenantQuotaPerDay"}, "Period": "DAY"}
    # Per-tenant plans (and API keys) are sluice-<api id>-tenant-<tenant>; this one is sluice-<api id>-default.
    assert p["UsagePlanName"] == {"Fn::Sub": "sluice-${SluiceApi}-default"}
    params = template["Parameters"]
    assert {n: params[n]["Default"] for n in ("TenantRateLimit", "TenantBurstLimit", "TenantQuotaPerDay")} == {
        "TenantRateLimit": 10,
        "TenantBurstLimit": 20,
        "TenantQuotaPerDay": 20000,
    }
    assert all(params[n]["MinValue"] >= 1 for n in ("TenantRateLimit", "TenantBurstLimit", "TenantQuotaPerDay"))


def test_d1_the_cli_finds_the_rest_api_stage_and_default_plan_in_the_outputs(template):
    outputs = template["Outputs"]
    for name, var, value in (
        ("RestApiId", "SLUICE_REST_API_ID", {"Ref": "SluiceApi"}),
        ("ApiStageName", "SLUICE_API_STAGE", {"Ref": "SluiceApi.Stage"}),
        ("DefaultUsagePlanId", "SLUICE_DEFAULT_USAGE_PLAN_ID", {"Ref": "DefaultUsagePlan"}),
    ):
        assert outputs[name]["Condition"] == "RestVariant", name
        assert outputs[name]["Value"] == value, name
        assert outputs[name]["Description"].startswith(var), name
        assert f"SLUICE_{var[len('SLUICE_'):]}=$(out {name})" in README, f"infra/README.md exports {var}"
    assert "sluice-<api id>-tenant-<tenant>" in README
    assert set(rendered(template, "http")["Outputs"]) >= {"ApiUrl", "HttpApiId"}
    assert not {"RestApiId", "ApiStageName", "DefaultUsagePlanId"} & set(rendered(template, "http")["Outputs"])


def test_i2_an_unusable_usage_plan_key_is_an_ordinary_401(template):
    responses = template["Resources"]["SluiceApi"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-gateway-responses"]
    assert responses["INVALID_API_KEY"]["statusCode"] == "401"
    assert responses["INVALID_API_KEY"]["responseTemplates"] == responses["UNAUTHORIZED"]["responseTemplates"]
    assert json.loads(substituted(responses["QUOTA_EXCEEDED"]["responseTemplates"]["application/json"]))["status"] == 429


# ------------------------------------------------------------------------------------------------ HTTP


def code_route_keys():
    """The route keys the HTTP variant deploys: every route the code serves but those `sluice serve` alone serves."""
    return {f"{method.upper()} {path}" for path, method in ic.code_routes(OPENAPI_RS) - SERVE_ONLY}


def integration_props(t, target):
    m = re.fullmatch(r"integrations/\$\{([A-Za-z0-9]+)\}", target["Fn::Sub"])
    return t["Resources"][m.group(1)]["Properties"]


def integration_function(t, target):
    m = re.fullmatch(r"integrations/\$\{([A-Za-z0-9]+)\}", target["Fn::Sub"])
    props = t["Resources"][m.group(1)]["Properties"]
    assert props["IntegrationType"] == "AWS_PROXY"
    assert props["PayloadFormatVersion"] == "2.0"
    return ic._getatt_target(props["IntegrationUri"])


@pytest.mark.parametrize("variant", HTTP_VARIANTS)
def test_s1_the_http_variant_deploys_exactly_the_contract_routes_and_only_the_webhook_route_is_open(
    template, contract, variant
):
    t = rendered(template, variant)
    routes = ic.http_routes(t)
    assert set(routes) == code_route_keys()
    assert set(routes) == {f"{m.upper()} {p}" for p, m in ic.api_operations(template)}, "the REST variant's routes"
    # The feed's Server-Sent Events stream cannot stream through API Gateway and Lambda: not routed on AWS.
    assert "GET /v1/feed/stream" not in routes
    jwt = "Jwt" in VARIANTS[variant].values()
    iam = VARIANTS[variant].get("IngestAuthorization") == "AwsIam"
    open_routes = [k for k, (_, p) in routes.items() if p.get("AuthorizationType", "NONE") == "NONE"]
    assert open_routes == [WEBHOOK_ROUTE]
    # The contract has no credential on exactly that route.
    path = WEBHOOK_ROUTE.split(" ", 1)[1]
    assert contract["paths"][path]["post"]["security"] == []
    for key, (name, p) in routes.items():
        if key == WEBHOOK_ROUTE:
            assert "AuthorizerId" not in p
        elif key == "POST /v1/events" and iam:
            assert p["AuthorizationType"] == "AWS_IAM" and "AuthorizerId" not in p, name
        elif jwt:
            assert p["AuthorizationType"] == "JWT" and p["AuthorizerId"] == {"Ref": "HttpJwtAuthorizer"}, name
        else:
            assert p["AuthorizationType"] == "CUSTOM" and p["AuthorizerId"] == {"Ref": "HttpKeyAuthorizer"}, name
        # The ingest routes reach the ingest function, every other route (reads, the feed, deletions and
        # erasures) the query function (T-1: both validate).
        method, path = key.split(" ", 1)
        expected = "IngestFunction" if (path, method.lower()) in ic.INGEST_ROUTES else "QueryFunction"
        assert integration_function(t, p["Target"]) == expected, key
        # Path parameters named as in the contract.
        names = set(re.findall(r"\{([a-z_]+)\}", path))
        op = contract["paths"][path][method.lower()]
        declared = {x["name"] for x in op.get("parameters", []) if "in" in x and x["in"] == "path"}
        declared |= {
            contract["components"]["parameters"][x["$ref"].split("/")[-1]]["name"]
            for x in op.get("parameters", [])
            if "$ref" in x and contract["components"]["parameters"][x["$ref"].split("/")[-1]]["in"] == "path"
        }
        assert names == declared, key
        # The REST method's integration timeout: 29 s for the feed's long-poll and erasures, 10 s otherwise.
        rest = ic.api_operations(template)[(path, method.lower())]["x-amazon-apigateway-integration"]
        assert integration_props(t, p["Target"])["TimeoutInMillis"] == rest["timeoutInMillis"], key
    api = t["Resources"]["HttpApi"]["Properties"]
    assert api["ProtocolType"] == "HTTP"
    assert not {"Body", "BodyS3Location", "Target", "RouteKey", "CorsConfiguration"} & set(api)


def test_s1_the_http_key_authorizer_is_the_sluice_authorizer_with_simple_cached_responses(template):
    a = rendered(template, "http")["Resources"]["HttpKeyAuthorizer"]["Properties"]
    assert a == {
        "ApiId": {"Ref": "HttpApi"},
        "Name": "sluice-key",
        "AuthorizerType": "REQUEST",
        "AuthorizerUri": {
            "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            "${AuthorizerFunction.Arn}/invocations"
        },
        "AuthorizerPayloadFormatVersion": "2.0",
        "EnableSimpleResponses": True,
        "IdentitySource": ["$request.header.Authorization"],
        "AuthorizerResultTtlInSeconds": {"Ref": "AuthorizerCacheTtl"},
    }
    jwt = rendered(template, "http-jwt")
    assert "HttpKeyAuthorizer" not in jwt["Resources"]
    assert jwt["Resources"]["HttpJwtAuthorizer"]["Properties"]["JwtConfiguration"] == {
        "Issuer": {"Ref": "OidcIssuer"},
        "Audience": {"Fn::Split": [",", {"Ref": "OidcAudience"}]},
    }
    # No invoke permission for an authorizer that is not deployed.
    assert "HttpAuthorizerInvokePermission" not in jwt["Resources"]


@pytest.mark.parametrize("variant", ["http", "http-jwt"])
def test_e1_api_gateway_invokes_each_function_only_on_its_own_http_routes(template, variant):
    t = rendered(template, variant)
    permissions = ic.of_type(t, "AWS::Lambda::Permission")
    assert all("${HttpApi}" in p["Properties"]["SourceArn"]["Fn::Sub"] for p in permissions.values())
    for key, (_, p) in ic.http_routes(t).items():
        method, path = key.split(" ", 1)
        concrete = re.sub(r"\{[a-z_]+\}", "x1", path)
        arn = f"arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{HttpApi}}/$default/{method}{concrete}"
        invokers = {
            r["Properties"]["FunctionName"]["Ref"]
            for r in permissions.values()
            if fnmatch.fnmatchcase(arn, r["Properties"]["SourceArn"]["Fn::Sub"])
        }
        assert invokers == {integration_function(t, p["Target"])}, key
    authorizer = [p for p in permissions.values() if p["Properties"]["FunctionName"] == {"Ref": "AuthorizerFunction"}]
    if variant == "http":
        [a] = authorizer
        assert a["Properties"]["SourceArn"]["Fn::Sub"].endswith("${HttpApi}/authorizers/${HttpKeyAuthorizer}")
    else:
        assert authorizer == []


def test_d1_http_route_throttles_use_the_rest_variants_parameters(template):
    """Each HTTP route has the limit its REST method has (D-1), the webhook route its own (S-6)."""
    rest = template["Resources"]["SluiceApi"]["Properties"]["MethodSettings"]
    stage = template["Resources"]["HttpApiStage"]["Properties"]
    by_route = {}
    for m in rest:
        limits = {"ThrottlingRateLimit": m["ThrottlingRateLimit"], "ThrottlingBurstLimit": m["ThrottlingBurstLimit"]}
        if (m["ResourcePath"], m["HttpMethod"]) == ("/*", "*"):
            assert {k: stage["DefaultRouteSettings"][k] for k in limits} == limits
        else:
            by_route[f"{m['HttpMethod']} {m['ResourcePath'][1:].replace('~1', '/')}"] = limits
    assert set(by_route) == set(stage["RouteSettings"]) == set(ic.http_routes(template))
    for key, limits in by_route.items():
        assert {k: stage["RouteSettings"][key][k] for k in limits} == limits, key
    assert stage["RouteSettings"][WEBHOOK_ROUTE]["ThrottlingRateLimit"] == {"Ref": "WebhookRateLimit"}
    # RouteSettings name routes: the stage is created after them.
    assert set(template["Resources"]["HttpApiStage"]["DependsOn"]) == {n for n, _ in ic.http_routes(template).values()}
    # `$default`: the functions see the contract's paths, with no stage segment (lambda_http keeps one
    # for any other stage of an HTTP API).
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True


REST_LOG_KEYS = {"id", "ip", "c", "tn", "key", "t", "m", "p", "s", "as", "err", "waf", "is", "il"}
HTTP_LOG_VARIABLES = {
    # The HTTP API's access log variables this template uses (API Gateway developer guide, "Customize
    # HTTP API access logs"): a misspelt one would log "-" for ever.
    "$context.requestId",
    "$context.identity.sourceIp",
    "$context.identity.caller",
    "$context.authorizer.tenant",
    "$context.authorizer.key_id",
    "$context.authorizer.claims.sub",
    "$context.requestTimeEpoch",
    "$context.httpMethod",
    "$context.routeKey",
    "$context.path",
    "$context.status",
    "$context.responseLength",
    "$context.authorizer.status",
    "$context.authorizer.error",
    "$context.error.responseType",
    "$context.integration.status",
    "$context.integrationLatency",
}


def test_r1_the_rest_access_log_keeps_the_fields_an_investigation_needs_with_short_keys(template):
    fmt = template["Resources"]["SluiceApi"]["Properties"]["AccessLogSetting"]["Format"]
    assert "\n" not in fmt
    record = json.loads(substituted(fmt))
    assert set(record) == REST_LOG_KEYS
    for var in ("requestId", "identity.sourceIp", "authorizer.tenant", "authorizer.key_id", "requestTimeEpoch",
                "path", "status", "error.responseType", "waf.status"):
        assert f'"$context.{var}"' in fmt, var


@pytest.mark.parametrize("variant", ["http", "http-jwt"])
def test_r1_the_http_access_log_has_the_rest_fields_the_http_api_has(template, variant):
    stage = rendered(template, variant)["Resources"]["HttpApiStage"]["Properties"]
    settings = stage["AccessLogSettings"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    fmt = settings["Format"]
    assert "\n" not in fmt
    assert set(re.findall(r"\$context\.[A-Za-z0-9_.]+", fmt)) <= HTTP_LOG_VARIABLES
    record = json.loads(substituted(fmt))
    # No WAF on an HTTP API; it adds the route key, the response length and the authorizer's error.
    common = REST_LOG_KEYS - {"waf", "tn", "key"}
    if variant == "http":
        assert set(record) == common | {"tn", "key", "rk", "len", "ae"}
    else:
        # The JWT authorizer has no tenant context: the token's subject identifies the caller.
        assert set(record) == common | {"sub", "rk", "len", "ae"}


def test_the_all_options_renderings_switch_each_variant_on(tmp_path, template):
    spec = importlib.util.spec_from_file_location("all_options", ROOT / "infra" / "tests" / "all-options.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = {
        "rest": ("REST", "SluiceKey"),
        "http": ("HTTP", "SluiceKey"),
        "http-jwt": ("HTTP", "Jwt"),
    }
    for variant, (api, authorizer) in expected.items():
        out = tmp_path / f"{variant}.yaml"
        import sys

        argv, sys.argv = sys.argv, ["all-options.py", str(TEMPLATE), str(out), variant]
        try:
            module.main()
        finally:
            sys.argv = argv
        t = ic.load_template(out)
        values = ic.parameter_values(t)
        assert (values["ApiType"], values["HttpApiAuthorizer"]) == (api, authorizer), variant
        assert values["CustomDomainName"] and values["EnableWaf"] == "true", variant
        # Every resource of the variant is deployed by the rendering's defaults, and nothing dangles.
        r = ic.render(t)
        assert ic.dangling_references(r) == [], variant
        assert t["Resources"] == template["Resources"], variant
