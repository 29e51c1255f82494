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
    p = props(t, "EventsTable")
    p["BillingMode"] = "PROVISIONED"
    p["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}


def _format_without_tenant(t):
    s = props(t, "SluiceApi")["AccessLogSetting"]
    s["Format"] = s["Format"].replace('"tenant":"$context.authorizer.tenant",', "")


def _leaky_5xx(t):
    r = api_body(t)["x-amazon-apigateway-gateway-responses"]["DEFAULT_5XX"]["responseTemplates"]
    r["application/json"] = '{"title":"$context.error.message","request_id":"$context.requestId"}'


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
    # functions.guard
    ("d2_functions_have_reserved_concurrency", "process-unbounded", lambda t: props(t, "ProcessFunction").pop("ReservedConcurrentExecutions")),
    ("d2_sqs_event_sources_bounded", "no-maximum-concurrency", lambda t: props(t, "ProcessFunction")["Events"]["Queue"]["Properties"].pop("ScalingConfig")),
    ("d2_sqs_event_sources_bounded", "whole-batch-retries", lambda t: props(t, "ProcessFunction")["Events"]["Queue"]["Properties"].pop("FunctionResponseTypes")),
    ("r1_functions_traced", "query-passthrough", lambda t: _set(props(t, "QueryFunction"), "Tracing", "PassThrough")),
    ("r1_functions_log_to_own_group", "authorizer-default-group", lambda t: props(t, "AuthorizerFunction").pop("LoggingConfig")),
    ("i1_env_holds_no_secrets", "signing-key-in-env", _env_secret),
    # queues.guard
    ("t2_queues_encrypted", "plaintext-queue", lambda t: props(t, "EventsQueue").pop("KmsMasterKeyId")),
    ("d3_queues_have_dlq", "no-redrive", lambda t: props(t, "EventsQueue").pop("RedrivePolicy")),
    ("d3_queues_have_retention", "dlq-default-retention", lambda t: props(t, "EventsDlq").pop("MessageRetentionPeriod")),
    ("s2_queues_have_policies", "no-queue-policies", lambda t: [t["Resources"].pop(k) for k in ("EventsQueuePolicy", "EventsDlqPolicy")]),
    ("s2_queue_policies_deny_insecure_transport", "plain-http-allowed", lambda t: _drop_statement(t, "EventsQueuePolicy", "DenyInsecureTransport")),
    ("s2_queue_policies_allow_only_stack_roles", "other-account-sends", lambda t: _set(props(t, "EventsQueuePolicy")["PolicyDocument"]["Statement"][0], "Principal", {"AWS": "arn:aws:iam::999999999999:root"})),
    # tables.guard
    ("t3_tables_have_pitr", "events-no-pitr", lambda t: _set(props(t, "EventsTable")["PointInTimeRecoverySpecification"], "PointInTimeRecoveryEnabled", False)),
    ("t3_tables_have_streams", "keys-no-stream", lambda t: props(t, "KeysTable").pop("StreamSpecification")),
    ("t3_tables_deletion_protected", "idempotency-deletable", lambda t: _set(props(t, "IdempotencyTable"), "DeletionProtectionEnabled", False)),
    ("t3_tables_deletion_protected", "events-deleted-with-stack", lambda t: _set(res(t, "EventsTable"), "DeletionPolicy", "Delete")),
    ("d4_tables_on_demand", "events-provisioned", _provisioned),
    ("i3_tables_encrypted_with_kms", "keys-default-encryption", lambda t: props(t, "KeysTable").pop("SSESpecification")),
    # api.guard
    ("d1_stages_throttled", "no-stage-wide-throttle", lambda t: props(t, "SluiceApi")["MethodSettings"].pop(0)),
    ("d1_stages_throttled", "method-without-limits", lambda t: props(t, "SluiceApi")["MethodSettings"][1].pop("ThrottlingRateLimit")),
    ("r1_stages_access_logged", "log-without-tenant", _format_without_tenant),
    ("r1_api_tracing_enabled", "no-xray", lambda t: _set(props(t, "SluiceApi"), "TracingEnabled", False)),
    ("i1_api_data_trace_off", "bodies-logged", lambda t: _set(props(t, "SluiceApi")["MethodSettings"][1], "DataTraceEnabled", True)),
    ("s1_api_methods_authorized", "open-list", lambda t: api_body(t)["paths"]["/v1/events"]["get"].pop("security")),
    ("s1_api_methods_authorized", "open-ingest-when-iam", lambda t: _set(api_body(t)["paths"]["/v1/events"]["post"]["security"]["Fn::If"], 1, [])),
    ("s1_authorizer_request_type_cached", "token-authorizer", lambda t: _set(api_body(t)["components"]["securitySchemes"]["SluiceKey"]["x-amazon-apigateway-authorizer"], "type", "token")),
    ("t1_api_validates_requests", "post-unvalidated", lambda t: api_body(t)["paths"]["/v1/events"]["post"].pop("x-amazon-apigateway-request-validator")),
    ("i2_gateway_errors_generic", "5xx-leaks-message", _leaky_5xx),
    ("s1_custom_domain_closes_default_endpoint", "execute-api-left-open", lambda t: api_body(t).pop("x-amazon-apigateway-endpoint-configuration")),
    ("d1_waf_rate_rule", "waf-without-rate-rule", lambda t: props(t, "ApiWebAcl")["Rules"].pop(0)),
    # operations.guard
    ("d3_queue_alarms", "no-age-alarm", lambda t: t["Resources"].pop("QueueAgeAlarm")),
    ("d2_function_alarms", "no-throttle-alarm", lambda t: t["Resources"].pop("FunctionThrottlesAlarm")),
    ("d4_dynamodb_throttle_alarm", "no-dynamodb-alarm", lambda t: t["Resources"].pop("DynamoDbThrottlesAlarm")),
    ("d1_api_error_alarms", "no-4xx-alarm", lambda t: t["Resources"].pop("Api4xxAlarm")),
    ("d2_alarms_have_actions", "silent-dlq-alarm", lambda t: props(t, "DlqNotEmptyAlarm").pop("AlarmActions")),
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
