#!/usr/bin/env python3
"""Failing fixtures for the cfn-guard rules in infra/rules/.

Each fixture is infra/template.yaml with exactly one mitigation taken out. scripts/check-infra.sh
writes every fixture as JSON, runs cfn-guard on it and requires that the named rule FAILS and that
no other rule does: a rule that can never fail, or a fixture that breaks more than it says, stops
the build. Every rule in infra/rules/*.guard must have at least one fixture here.

Usage: guard_fixtures.py TEMPLATE OUTDIR  (needs cfn-lint's YAML loader, which understands the
short intrinsic tags). Writes OUTDIR/<rule>--<name>.json and prints one line per fixture.
"""
import copy
import json
import os
import sys

from cfnlint.decode import decode


def res(t, name):
    return t["Resources"][name]


def props(t, name):
    return t["Resources"][name]["Properties"]


def statement(t, role, sid):
    for policy in props(t, role)["Policies"]:
        for s in policy["PolicyDocument"]["Statement"]:
            if s.get("Sid") == sid:
                return s
    raise KeyError(f"{role} has no statement {sid}")


def api_body(t):
    return props(t, "SluiceApi")["DefinitionBody"]


def _set(d, key, value):
    d[key] = value


def _wild_action(t):
    statement(t, "IngestRole", "AppSendEvents")["Action"] = ["sqs:*"]


def _wild_resource(t):
    statement(t, "QueryRole", "AppReadEvents")["Resource"] = "*"


def _wild_resource_in_if(t):
    for policy in props(t, "ProcessRole")["Policies"]:
        for s in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in s:
                s["Fn::If"][1]["Action"].append("dynamodb:PutItem")
                return
    raise KeyError("no conditional statement in ProcessRole")


def _managed_policy(t):
    props(t, "IngestRole")["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ]


def _sam_role(t):
    f = props(t, "IngestFunction")
    del f["Role"]
    f["Policies"] = [{"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["EventsQueue", "QueueName"]}}}]


def _foreign_trust(t):
    s = props(t, "ProcessRole")["AssumeRolePolicyDocument"]["Statement"][0]
    s["Principal"] = {"AWS": "arn:aws:iam::999999999999:root"}
    del s["Condition"]


def _drop_statement(t, policy_resource, sid):
    doc = props(t, policy_resource)["PolicyDocument"]
    doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]


def _env_secret(t):
    props(t, "IngestFunction")["Environment"]["Variables"]["SLUICE_SIGNING_KEY"] = "c2VjcmV0LXNpZ25pbmcta2V5"


def _no_ddb_endpoint_rule_break(t):
    del t["Resources"]["SqsEndpoint"]


def _provisioned(t):
    p = props(t, "EventsTableV2")
    p["BillingMode"] = "PROVISIONED"
    p["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}


def _format_without_tenant(t):
    s = props(t, "SluiceApi")["AccessLogSetting"]
    assert '"tn":"$context.authorizer.tenant",' in s["Format"]
    s["Format"] = s["Format"].replace('"tn":"$context.authorizer.tenant",', "")


def _app_statements(t, role):
    for policy in props(t, role)["Policies"]:
        if policy["PolicyName"] == "app":
            return policy["PolicyDocument"]["Statement"]
    raise KeyError(f"{role} has no app policy")


def _read_sources(sid):
    return {"Sid": sid, "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": {"Fn::GetAtt": ["SourcesTable", "Arn"]}}


def _query_reads_sources(t):
    _app_statements(t, "QueryRole").append(_read_sources("AppReadSources"))


def _process_reads_sources_in_vpc_mode(t):
    _app_statements(t, "ProcessRole").append({"Fn::If": ["VpcMode", _read_sources("AppReadSources"), {"Ref": "AWS::NoValue"}]})


def _policy_resource_reads_sources(t):
    t["Resources"]["QuerySourcesPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "sources",
            "Roles": [{"Ref": "QueryRole"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [_read_sources("ReadSources")]},
        },
    }


def _authorizer_reads_every_table(t):
    statement(t, "AuthorizerRole", "AppReadKeys")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"
    }


def _idempotency_statement_covers_sources(t):
    s = statement(t, "IngestRole", "AppIdempotency")
    s["Resource"] = [s["Resource"], {"Fn::GetAtt": ["SourcesTable", "Arn"]}]


def webhook_operation(t):
    return api_body(t)["paths"]["/v1/sources/{source_id}"]["post"]


def _webhook_to_query(t):
    webhook_operation(t)["x-amazon-apigateway-integration"]["uri"] = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${QueryFunction.Arn}/invocations"
    }


def _webhook_to_outside(t):
    webhook_operation(t)["x-amazon-apigateway-integration"].update(
        {"type": "http_proxy", "uri": "https://collector.example.net/{proxy}"}
    )


def _open_put_beside_webhook(t):
    op = copy.deepcopy(webhook_operation(t))
    op["operationId"] = "replaceWebhook"
    api_body(t)["paths"]["/v1/sources/{source_id}"]["put"] = op


def _open_copy_of_webhook(t):
    op = copy.deepcopy(webhook_operation(t))
    op["operationId"] = "deliverHook"
    api_body(t)["paths"]["/v1/hooks/{source_id}"] = {"post": op}


def _webhook_unthrottled(t):
    settings = props(t, "SluiceApi")["MethodSettings"]
    props(t, "SluiceApi")["MethodSettings"] = [s for s in settings if s["ResourcePath"] != "/~1v1~1sources~1{source_id}"]
    assert len(settings) == len(props(t, "SluiceApi")["MethodSettings"]) + 1


def _leaky_5xx(t):
    r = api_body(t)["x-amazon-apigateway-gateway-responses"]["DEFAULT_5XX"]["responseTemplates"]
    r["application/json"] = '{"title":"$context.error.message","request_id":"$context.requestId"}'


def security_schemes(t):
    return api_body(t)["components"]["securitySchemes"]


def _usage_plan_key_as_alternative(t):
    # Either credential instead of both: a request with the authorizer alone is never counted.
    api_body(t)["paths"]["/v1/events/{id}"]["get"]["security"] = [{"SluiceKey": []}, {"UsagePlanKey": []}]


def _second_custom_authorizer(t):
    schemes = security_schemes(t)
    schemes["PartnerKey"] = copy.deepcopy(schemes["SluiceKey"])
    api_body(t)["paths"]["/v1/events"]["get"]["security"] = [{"PartnerKey": []}]


def _unlimited_tenant_plan(t):
    t["Resources"]["TenantPlan"] = {
        "Type": "AWS::ApiGateway::UsagePlan",
        "Condition": "RestVariant",
        "Properties": {
            "UsagePlanName": {"Fn::Sub": "sluice-${SluiceApi}-tenant-acme"},
            "ApiStages": copy.deepcopy(props(t, "DefaultUsagePlan")["ApiStages"]),
        },
    }


def route(t, name):
    return props(t, name)


def _http_route(key, target, auth, authorizer=None):
    p = {
        "ApiId": {"Ref": "HttpApi"},
        "RouteKey": key,
        "Target": {"Fn::Sub": f"integrations/${{{target}}}"},
        "AuthorizationType": auth,
    }
    if authorizer:
        p["AuthorizerId"] = {"Ref": authorizer}
    return {"Type": "AWS::ApiGatewayV2::Route", "Condition": "HttpVariant", "Properties": p}


def _open_copy_of_list_route(t):
    t["Resources"]["HttpExportRoute"] = _http_route("GET /v1/export", "HttpQueryIntegration", "NONE")


def _open_copy_of_http_webhook_route(t):
    t["Resources"]["HttpHooksRoute"] = _http_route("POST /v1/hooks/{source_id}", "HttpIngestIntegration", "NONE")


def _http_api_with_openapi_body(t):
    props(t, "HttpApi")["Body"] = {"openapi": "3.0.1", "info": {"title": "x", "version": "1"}, "paths": {"/v1/dump": {"get": {}}}}


def _export_route_to_outside(t):
    t["Resources"]["HttpOutsideIntegration"] = {
        "Type": "AWS::ApiGatewayV2::Integration",
        "Condition": "HttpVariant",
        "Properties": {
            "ApiId": {"Ref": "HttpApi"},
            "IntegrationType": "HTTP_PROXY",
            "IntegrationMethod": "ANY",
            "IntegrationUri": "https://collector.example.net/export",
            "PayloadFormatVersion": "1.0",
        },
    }
    t["Resources"]["HttpExportRoute"] = _http_route("GET /v1/export", "HttpOutsideIntegration", "CUSTOM", "HttpKeyAuthorizer")


def _authorized_catch_all_route(t):
    t["Resources"]["HttpDefaultRoute"] = _http_route("$default", "HttpQueryIntegration", "CUSTOM", "HttpKeyAuthorizer")


def _log_format_branch(t, branch, drop):
    fmt = props(t, "HttpApiStage")["AccessLogSettings"]["Format"]["Fn::If"]
    for field in drop:
        assert field in fmt[branch], field
        fmt[branch] = fmt[branch].replace(field, "")


def env(t, function):
    return props(t, function)["Environment"]["Variables"]


def alarm_metric(t, alarm, metric_id):
    for m in props(t, alarm)["Metrics"]:
        if m["Id"] == metric_id:
            return m
    raise KeyError(f"{alarm} has no metric {metric_id}")


def _drop_alarm_metric(t, alarm, metric_id):
    metrics = props(t, alarm)["Metrics"]
    props(t, alarm)["Metrics"] = [m for m in metrics if m["Id"] != metric_id]
    assert len(metrics) == len(props(t, alarm)["Metrics"]) + 1, metric_id


def _latency_on_average(t):
    p = props(t, "StoredLatencyAlarm")
    del p["ExtendedStatistic"]
    del p["EvaluateLowSampleCountPercentile"]
    p["Statistic"] = "Average"


def _http_webhook_stage_limits_only(t):
    del props(t, "HttpApiStage")["RouteSettings"]["POST /v1/sources/{source_id}"]


# (rule, fixture name, mutation)
FIXTURES = [
    # iam.guard
    ("e1_no_wildcard_iam_action", "ingest-sqs-star", _wild_action),
    ("e1_no_wildcard_iam_resource", "query-reads-any-table", _wild_resource),
    ("e1_no_wildcard_iam_resource", "vpc-statement-writes-any-table", _wild_resource_in_if),
    ("e1_roles_have_no_managed_policies", "basic-execution-role", _managed_policy),
    ("e1_functions_have_own_role", "sam-policy-template", _sam_role),
    ("e1_lambda_permissions_scoped", "any-api-may-invoke", lambda t: props(t, "IngestInvokePermission").pop("SourceArn")),
    ("s3_roles_trust_services_in_this_account", "other-account-assumes", _foreign_trust),
    ("i3_sources_table_read_by_ingest_only", "query-reads-sources", _query_reads_sources),
    ("i3_sources_table_read_by_ingest_only", "process-reads-sources-in-vpc-mode", _process_reads_sources_in_vpc_mode),
    ("i3_sources_table_read_by_ingest_only", "policy-resource-reads-sources", _policy_resource_reads_sources),
    ("i3_sources_table_read_by_ingest_only", "authorizer-reads-every-table", _authorizer_reads_every_table),
    ("i3_sources_table_read_by_ingest_only", "ingest-scans-sources", lambda t: statement(t, "IngestRole", "AppReadSources")["Action"].append("dynamodb:Scan")),
    ("i3_sources_table_read_by_ingest_only", "ingest-writes-sources", lambda t: _set(statement(t, "IngestRole", "AppReadSources"), "Action", ["dynamodb:GetItem", "dynamodb:PutItem"])),
    ("i3_sources_table_read_by_ingest_only", "idempotency-statement-covers-sources", _idempotency_statement_covers_sources),
    # functions.guard
    ("d2_functions_have_reserved_concurrency", "process-unbounded", lambda t: props(t, "ProcessFunction").pop("ReservedConcurrentExecutions")),
    ("d2_sqs_event_sources_bounded", "no-maximum-concurrency", lambda t: props(t, "ProcessFunction")["Events"]["Queue"]["Properties"].pop("ScalingConfig")),
    ("d2_sqs_event_sources_bounded", "whole-batch-retries", lambda t: props(t, "ProcessFunction")["Events"]["Queue"]["Properties"].pop("FunctionResponseTypes")),
    ("r1_functions_traced", "query-passthrough", lambda t: _set(props(t, "QueryFunction"), "Tracing", "PassThrough")),
    ("r1_functions_log_to_own_group", "authorizer-default-group", lambda t: props(t, "AuthorizerFunction").pop("LoggingConfig")),
    ("i1_env_holds_no_secrets", "signing-key-in-env", _env_secret),
    ("r1_functions_emit_metrics_to_the_stack_namespace", "process-without-metrics-namespace", lambda t: env(t, "ProcessFunction").pop("SLUICE_METRICS_NAMESPACE")),
    ("r1_functions_emit_metrics_to_the_stack_namespace", "authorizer-namespace-of-its-own", lambda t: _set(env(t, "AuthorizerFunction"), "SLUICE_METRICS_NAMESPACE", "Sluice/authorizer")),
    # queues.guard
    ("t2_queues_encrypted", "plaintext-queue", lambda t: props(t, "EventsQueue").pop("KmsMasterKeyId")),
    ("d3_queues_have_dlq", "no-redrive", lambda t: props(t, "EventsQueue").pop("RedrivePolicy")),
    ("d3_queues_have_retention", "dlq-default-retention", lambda t: props(t, "EventsDlq").pop("MessageRetentionPeriod")),
    ("s2_queues_have_policies", "no-queue-policies", lambda t: [t["Resources"].pop(k) for k in ("EventsQueuePolicy", "EventsDlqPolicy")]),
    ("s2_queue_policies_deny_insecure_transport", "plain-http-allowed", lambda t: _drop_statement(t, "EventsQueuePolicy", "DenyInsecureTransport")),
    ("s2_queue_policies_allow_only_stack_roles", "other-account-sends", lambda t: _set(props(t, "EventsQueuePolicy")["PolicyDocument"]["Statement"][0], "Principal", {"AWS": "arn:aws:iam::999999999999:root"})),
    # tables.guard
    ("t3_tables_have_pitr", "events-no-pitr", lambda t: _set(props(t, "EventsTableV2")["PointInTimeRecoverySpecification"], "PointInTimeRecoveryEnabled", False)),
    ("t3_tables_have_streams", "keys-no-stream", lambda t: props(t, "KeysTable").pop("StreamSpecification")),
    ("t3_tables_deletion_protected", "idempotency-deletable", lambda t: _set(props(t, "IdempotencyTable"), "DeletionProtectionEnabled", False)),
    ("t3_tables_deletion_protected", "events-deleted-with-stack", lambda t: _set(res(t, "EventsTableV2"), "DeletionPolicy", "Delete")),
    ("d4_tables_on_demand", "events-provisioned", _provisioned),
    ("i3_tables_encrypted_with_kms", "keys-default-encryption", lambda t: props(t, "KeysTable").pop("SSESpecification")),
    ("t3_tables_have_streams", "sources-no-stream", lambda t: props(t, "SourcesTable").pop("StreamSpecification")),
    ("t3_tables_deletion_protected", "sources-deletable", lambda t: _set(props(t, "SourcesTable"), "DeletionProtectionEnabled", False)),
    # A sources table with no key at all also fails i3_tables_encrypted_with_kms; these fail only the
    # stricter rule: a key that is not the stack's own, and the function reading another table.
    ("i3_sources_table_encrypted_with_stack_key", "sources-aws-managed-key", lambda t: _set(props(t, "SourcesTable")["SSESpecification"], "KMSMasterKeyId", "alias/aws/dynamodb")),
    ("i3_sources_table_encrypted_with_stack_key", "ingest-reads-keys-as-sources", lambda t: _set(props(t, "IngestFunction")["Environment"]["Variables"], "SLUICE_SOURCES_TABLE", {"Ref": "KeysTable"})),
    ("i3_events_table_expires_by_ttl", "events-kept-forever", lambda t: props(t, "EventsTableV2").pop("TimeToLiveSpecification")),
    ("i3_events_table_expires_by_ttl", "ttl-on-an-attribute-never-written", lambda t: _set(props(t, "EventsTableV2")["TimeToLiveSpecification"], "AttributeName", "expires_at")),
    ("i3_events_table_expires_by_ttl", "query-on-a-table-without-ttl", lambda t: _set(env(t, "QueryFunction"), "SLUICE_TABLE", {"Ref": "KeysTable"})),
    # api.guard
    ("d1_stages_throttled", "no-stage-wide-throttle", lambda t: props(t, "SluiceApi")["MethodSettings"].pop(0)),
    ("d1_stages_throttled", "method-without-limits", lambda t: props(t, "SluiceApi")["MethodSettings"][1].pop("ThrottlingRateLimit")),
    ("d1_stages_throttled", "webhook-route-stage-limits-only", _webhook_unthrottled),
    ("r1_stages_access_logged", "log-without-tenant", _format_without_tenant),
    ("r1_api_tracing_enabled", "no-xray", lambda t: _set(props(t, "SluiceApi"), "TracingEnabled", False)),
    ("i1_api_data_trace_off", "bodies-logged", lambda t: _set(props(t, "SluiceApi")["MethodSettings"][1], "DataTraceEnabled", True)),
    ("s1_api_methods_authorized", "open-list", lambda t: api_body(t)["paths"]["/v1/events"]["get"].pop("security")),
    ("s1_api_methods_authorized", "open-ingest-when-iam", lambda t: _set(api_body(t)["paths"]["/v1/events"]["post"]["security"]["Fn::If"], 1, [])),
    ("s1_api_methods_authorized", "open-ingest", lambda t: _set(api_body(t)["paths"]["/v1/events"]["post"], "security", [])),
    ("s1_api_methods_authorized", "open-put-beside-webhook", _open_put_beside_webhook),
    ("s1_api_methods_authorized", "open-copy-of-webhook-route", _open_copy_of_webhook),
    ("s1_api_methods_authorized", "webhook-route-to-query", _webhook_to_query),
    ("s1_api_methods_authorized", "webhook-route-to-outside", _webhook_to_outside),
    ("s1_api_methods_authorized", "open-feed", lambda t: api_body(t)["paths"]["/v1/feed"]["get"].pop("security")),
    ("s1_api_methods_authorized", "open-erasures", lambda t: _set(api_body(t)["paths"]["/v1/erasures"]["post"], "security", [])),
    ("s1_authorizer_request_type_cached", "token-authorizer", lambda t: _set(api_body(t)["components"]["securitySchemes"]["SluiceKey"]["x-amazon-apigateway-authorizer"], "type", "token")),
    ("t1_api_validates_requests", "post-unvalidated", lambda t: api_body(t)["paths"]["/v1/events"]["post"].pop("x-amazon-apigateway-request-validator")),
    ("t1_api_validates_requests", "webhook-body-unvalidated", lambda t: api_body(t)["paths"]["/v1/sources/{source_id}"]["post"].update({"x-amazon-apigateway-request-validator": "params"})),
    ("t1_api_validates_requests", "erasure-body-unvalidated", lambda t: api_body(t)["paths"]["/v1/erasures"]["post"].update({"x-amazon-apigateway-request-validator": "params"})),
    ("i2_gateway_errors_generic", "5xx-leaks-message", _leaky_5xx),
    ("s1_custom_domain_closes_default_endpoint", "execute-api-left-open", lambda t: api_body(t).pop("x-amazon-apigateway-endpoint-configuration")),
    ("d1_waf_rate_rule", "waf-without-rate-rule", lambda t: props(t, "ApiWebAcl")["Rules"].pop(0)),
    ("d1_rest_methods_require_usage_plan_key", "list-without-usage-plan-key", lambda t: api_body(t)["paths"]["/v1/events"]["get"]["security"][0].pop("UsagePlanKey")),
    ("d1_rest_methods_require_usage_plan_key", "delete-without-usage-plan-key", lambda t: api_body(t)["paths"]["/v1/events/{id}"]["delete"]["security"][0].pop("UsagePlanKey")),
    ("d1_rest_methods_require_usage_plan_key", "feed-without-usage-plan-key", lambda t: api_body(t)["paths"]["/v1/feed"]["get"]["security"][0].pop("UsagePlanKey")),
    ("d1_rest_methods_require_usage_plan_key", "ingest-key-branch-without-usage-plan-key", lambda t: api_body(t)["paths"]["/v1/events"]["post"]["security"]["Fn::If"][2][0].pop("UsagePlanKey")),
    ("d1_rest_methods_require_usage_plan_key", "usage-plan-key-as-alternative", _usage_plan_key_as_alternative),
    ("d1_rest_methods_require_usage_plan_key", "client-sends-the-usage-key", lambda t: _set(api_body(t), "x-amazon-apigateway-api-key-source", "HEADER")),
    ("d1_rest_methods_require_usage_plan_key", "usage-plan-key-is-sigv4", lambda t: _set(security_schemes(t)["UsagePlanKey"], "x-amazon-apigateway-authtype", "awsSigv4")),
    ("d1_rest_methods_require_usage_plan_key", "second-custom-authorizer-without-key", _second_custom_authorizer),
    ("d2_usage_plans_throttled_with_quota", "default-plan-without-quota", lambda t: props(t, "DefaultUsagePlan").pop("Quota")),
    ("d2_usage_plans_throttled_with_quota", "default-plan-without-burst", lambda t: props(t, "DefaultUsagePlan")["Throttle"].pop("BurstLimit")),
    ("d2_usage_plans_throttled_with_quota", "no-usage-plan", lambda t: t["Resources"].pop("DefaultUsagePlan")),
    ("d2_usage_plans_throttled_with_quota", "unlimited-tenant-plan", _unlimited_tenant_plan),
    # http_api.guard
    ("s1_http_routes_authorized", "open-list-route", lambda t: [route(t, "HttpListEventsRoute").pop("AuthorizerId"), _set(route(t, "HttpListEventsRoute"), "AuthorizationType", "NONE")]),
    ("s1_http_routes_authorized", "open-ingest-when-iam", lambda t: _set(route(t, "HttpPostEventsRoute")["AuthorizationType"]["Fn::If"], 1, "NONE")),
    ("s1_http_routes_authorized", "open-ingest-with-key-authorizer", lambda t: _set(route(t, "HttpPostEventsRoute")["AuthorizationType"]["Fn::If"][2]["Fn::If"], 2, "NONE")),
    ("s1_http_routes_authorized", "route-names-no-authorizer", lambda t: route(t, "HttpGetEventRoute").pop("AuthorizerId")),
    ("s1_http_routes_authorized", "open-delete-route", lambda t: [route(t, "HttpDeleteEventRoute").pop("AuthorizerId"), _set(route(t, "HttpDeleteEventRoute"), "AuthorizationType", "NONE")]),
    ("s1_http_routes_authorized", "erasure-route-names-no-authorizer", lambda t: route(t, "HttpPostErasureRoute").pop("AuthorizerId")),
    ("s1_http_routes_authorized", "open-copy-of-list-route", _open_copy_of_list_route),
    ("s1_http_routes_authorized", "open-copy-of-webhook-route", _open_copy_of_http_webhook_route),
    ("s1_http_routes_authorized", "webhook-route-to-query", lambda t: _set(route(t, "HttpWebhookRoute"), "Target", {"Fn::Sub": "integrations/${HttpQueryIntegration}"})),
    ("s1_http_routes_authorized", "routes-from-an-openapi-body", _http_api_with_openapi_body),
    ("s1_http_authorizers_configured", "key-authorizer-uncached", lambda t: props(t, "HttpKeyAuthorizer").pop("AuthorizerResultTtlInSeconds")),
    ("s1_http_authorizers_configured", "key-authorizer-iam-policy-responses", lambda t: _set(props(t, "HttpKeyAuthorizer"), "EnableSimpleResponses", False)),
    ("s1_http_authorizers_configured", "jwt-authorizer-any-audience", lambda t: props(t, "HttpJwtAuthorizer")["JwtConfiguration"].pop("Audience")),
    ("t1_http_routes_reach_validating_functions", "export-route-to-outside", _export_route_to_outside),
    ("t1_http_routes_reach_validating_functions", "authorized-catch-all-route", _authorized_catch_all_route),
    ("t1_http_routes_reach_validating_functions", "query-payload-format-1", lambda t: _set(props(t, "HttpQueryIntegration"), "PayloadFormatVersion", "1.0")),
    ("t1_http_routes_reach_validating_functions", "long-poll-payload-format-1", lambda t: _set(props(t, "HttpQueryLongIntegration"), "PayloadFormatVersion", "1.0")),
    ("d1_http_stages_throttled", "no-default-route-throttle", lambda t: props(t, "HttpApiStage")["DefaultRouteSettings"].pop("ThrottlingRateLimit")),
    ("d1_http_stages_throttled", "query-route-without-burst", lambda t: props(t, "HttpApiStage")["RouteSettings"]["GET /v1/events"].pop("ThrottlingBurstLimit")),
    ("d1_http_stages_throttled", "feed-route-without-rate", lambda t: props(t, "HttpApiStage")["RouteSettings"]["GET /v1/feed"].pop("ThrottlingRateLimit")),
    ("d1_http_stages_throttled", "http-webhook-route-stage-limits-only", _http_webhook_stage_limits_only),
    ("r1_http_stages_access_logged", "key-log-without-tenant", lambda t: _log_format_branch(t, 2, ['"tn":"$context.authorizer.tenant",', '"key":"$context.authorizer.key_id",'])),
    ("r1_http_stages_access_logged", "jwt-log-without-subject", lambda t: _log_format_branch(t, 1, ['"sub":"$context.authorizer.claims.sub",'])),
    ("r1_http_stages_access_logged", "no-http-access-log", lambda t: props(t, "HttpApiStage").pop("AccessLogSettings")),
    ("s1_http_custom_domain_closes_default_endpoint", "http-execute-api-left-open", lambda t: props(t, "HttpApi").pop("DisableExecuteApiEndpoint")),
    # operations.guard
    ("d3_queue_alarms", "no-age-alarm", lambda t: t["Resources"].pop("QueueAgeAlarm")),
    ("d2_function_alarms", "no-throttle-alarm", lambda t: t["Resources"].pop("FunctionThrottlesAlarm")),
    ("d4_dynamodb_throttle_alarm", "no-dynamodb-alarm", lambda t: t["Resources"].pop("DynamoDbThrottlesAlarm")),
    ("d1_api_error_alarms", "no-4xx-alarm", lambda t: t["Resources"].pop("Api4xxAlarm")),
    ("d1_api_error_alarms", "no-http-4xx-alarm", lambda t: t["Resources"].pop("HttpApi4xxAlarm")),
    ("d2_alarms_have_actions", "silent-dlq-alarm", lambda t: props(t, "DlqNotEmptyAlarm").pop("AlarmActions")),
    ("t1_rejection_rate_alarm", "no-rejection-alarm", lambda t: t["Resources"].pop("RejectionRateAlarm")),
    ("t1_rejection_rate_alarm", "rejections-in-a-literal-namespace", lambda t: _set(alarm_metric(t, "RejectionRateAlarm", "vf")["MetricStat"]["Metric"], "Namespace", "Sluice")),
    ("t1_rejection_rate_alarm", "rejection-rate-without-accepted-events", lambda t: _drop_alarm_metric(t, "RejectionRateAlarm", "accepted")),
    ("t1_rejection_rate_alarm", "rejection-alarm-blind-to-contract-violations", lambda t: _drop_alarm_metric(t, "RejectionRateAlarm", "vf")),
    ("t1_rejection_rate_alarm", "rejection-alarm-silent-on-recovery", lambda t: props(t, "RejectionRateAlarm").pop("OKActions")),
    ("d3_stored_latency_alarm", "no-stored-latency-alarm", lambda t: t["Resources"].pop("StoredLatencyAlarm")),
    ("d3_stored_latency_alarm", "stored-latency-on-average", _latency_on_average),
    ("d3_dead_letter_metric_alarm", "no-dead-letter-alarm", lambda t: t["Resources"].pop("DeadLetteredAlarm")),
    ("d3_dead_letter_metric_alarm", "first-dead-letter-ignored", lambda t: _set(props(t, "DeadLetteredAlarm"), "Threshold", 1)),
    ("d2_budget_with_alerts", "no-budget", lambda t: t["Resources"].pop("CostBudget")),
    ("r1_log_groups_retained_and_encrypted", "ingest-logs-forever", lambda t: props(t, "IngestLogGroup").pop("RetentionInDays")),
    ("r1_log_groups_retained_and_encrypted", "access-log-plaintext", lambda t: props(t, "ApiAccessLogGroup").pop("KmsKeyId")),
    ("s3_trails_validated_and_encrypted", "no-log-validation", lambda t: _set(props(t, "Trail"), "EnableLogFileValidation", False)),
    ("t2_kms_keys_rotate", "no-rotation", lambda t: _set(props(t, "PipelineKey"), "EnableKeyRotation", False)),
    ("i1_topics_encrypted", "plaintext-topic", lambda t: props(t, "AlarmTopic").pop("KmsMasterKeyId")),
    ("i3_vpc_mode_has_endpoints", "no-sqs-endpoint", _no_ddb_endpoint_rule_break),
]


def main() -> None:
    template_path, out_dir = sys.argv[1], sys.argv[2]
    template, matches = decode(template_path)
    if matches:
        sys.exit(f"guard_fixtures.py: cannot parse {template_path}: {matches}")
    base = json.loads(json.dumps(template))
    os.makedirs(out_dir, exist_ok=True)
    for rule, name, mutate in FIXTURES:
        t = copy.deepcopy(base)
        mutate(t)
        path = os.path.join(out_dir, f"{rule}--{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(t, f, indent=1)
        print(f"{rule} {path}")


if __name__ == "__main__":
    main()
