"""The functions' own metrics on AWS (issue 17): every function writes CloudWatch Embedded Metric Format lines
to its log group once per invocation, in the namespace of the MetricsNamespace parameter, each metric with
the dimension `function` (the manifest's name of the function) and its own labels. The dashboard and the
alarms read exactly those metrics (R-1), the rejection-rate alarm watches stable problem codes (T-1), the
stored-latency and dead-letter alarms watch the process function (D-3), and infra/README.md documents them.

Run by scripts/check-infra.sh:  python -m pytest infra/tests
Inputs: infra/template.yaml, crates/sluice-core/src/metrics.rs (the metric names the code records),
crates/sluice-lambda/functions.toml (the function names), docs/problems.md (the stable problem codes) and
infra/README.md. A missing file fails; nothing is skipped.
"""
import re
from pathlib import Path

import pytest

import infra_check as ic

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
MANIFEST = ROOT / "crates" / "sluice-lambda" / "functions.toml"
METRICS_RS = ROOT / "crates" / "sluice-core" / "src" / "metrics.rs"
PROBLEMS_MD = ROOT / "docs" / "problems.md"
README = ROOT / "infra" / "README.md"

# The dimensions each metric is written with on AWS: `function` and the metric's labels, one dimension set
# per metric (CloudWatch tells metrics apart by their whole dimension set, so an alarm must name all of it).
DIMENSIONS = {
    "sluice_events_accepted_total": {"function"},
    "sluice_events_rejected_total": {"function", "code"},
    "sluice_events_stored_total": {"function", "outcome"},
    "sluice_http_requests_total": {"function", "route", "status"},
    "sluice_request_duration_seconds": {"function", "route"},
    "sluice_stored_latency_seconds": {"function"},
    "sluice_throttled_total": {"function", "scope"},
    "sluice_auth_failures_total": {"function"},
}
# The process step's outcomes (crates/sluice-core/src/process.rs, `Outcome`): `erased` is an event about a subject
# erased after it was accepted, dropped instead of stored.
OUTCOMES = ["stored", "duplicate", "erased", "retried", "dead_lettered"]
# What the rejection-rate alarm watches (the comment on RejectionRateAlarm says why these).
REJECTION_CODES = {
    "validation_failed",
    "malformed_json",
    "invalid_header",
    "payload_too_large",
    "unsupported_media_type",
    "unauthorized",
}
# Capacity and faults: other alarms watch them; a rejection-rate alarm on them would fire for the wrong reason.
NOT_REJECTIONS = {"throttled", "queue_unavailable", "store_unavailable", "auth_unavailable", "internal"}
VARIANTS = {"rest": {}, "http": {"ApiType": "HTTP"}}
NAMESPACE = {"Ref": "MetricsNamespace"}
SEARCH = re.compile(
    r"""SEARCH\('\{"(?P<ns>[^"]+)",(?P<dims>[a-z,]+)\} MetricName="(?P<name>[a-z_]+)"', '(?P<stat>[A-Za-z0-9.]+)', 60\)"""
)


@pytest.fixture(scope="module")
def template():
    return ic.load_template(TEMPLATE)


@pytest.fixture(scope="module")
def functions():
    return {spec.name for spec in ic.load_manifest(MANIFEST).values()}


@pytest.fixture(scope="module")
def code_metrics():
    names = set(re.findall(r'pub const [A-Z_]+: &str = "(sluice_[a-z_]+)";', METRICS_RS.read_text(encoding="utf-8")))
    assert names, f"{METRICS_RS} names no metric"
    return names


def namespace_pattern(template):
    return re.compile(template["Parameters"]["MetricsNamespace"]["AllowedPattern"])


def test_the_dimension_table_names_metrics_the_code_records(code_metrics):
    assert set(DIMENSIONS) <= code_metrics


def test_the_outcomes_are_those_the_process_step_records():
    text = (ROOT / "crates" / "sluice-core" / "src" / "process.rs").read_text(encoding="utf-8")
    body = text.split("fn record_outcome", 1)[1].split("metrics::counter!", 1)[0]
    labels = re.findall(r'Outcome::[A-Za-z]+(?:\(_\))? => "([a-z_]+)"', body)
    assert labels and set(labels) == set(OUTCOMES)


def test_r1_the_namespace_parameter_allows_cloudwatch_namespaces_but_not_aws_ones(template):
    p = template["Parameters"]["MetricsNamespace"]
    assert p["Type"] == "String" and p["Default"] == "Sluice"
    pattern = namespace_pattern(template)
    # CloudFormation matches AllowedPattern against the whole value, as fullmatch does.
    for ok in ("Sluice", "Acme/Sluice prod", "sluice-prod_1.2", "team#1:sluice", "a" * 255, "AWS", "AWSome/x"):
        assert pattern.fullmatch(ok), ok
    for bad in ("", "AWS/Sluice", " Sluice", "Sluice\t", "Sluice\n", "a" * 256, 'Slu"ice', "Slu'ice", "Sluice{x}"):
        assert not pattern.fullmatch(bad), bad


def test_r1_every_function_writes_metrics_to_the_stack_namespace(template):
    functions = ic.of_type(template, "AWS::Serverless::Function")
    assert len(functions) == 4
    for name, f in functions.items():
        assert f["Properties"]["Environment"]["Variables"]["SLUICE_METRICS_NAMESPACE"] == NAMESPACE, name
        logging = f["Properties"]["LoggingConfig"]
        # The EMF lines carry no "level", so Lambda's log-level filter takes them for INFO: a higher
        # ApplicationLogLevel would drop every metric.
        assert logging["ApplicationLogLevel"] in ("TRACE", "DEBUG", "INFO"), name
        # CloudWatch extracts EMF metrics from Standard log groups only (not Infrequent Access).
        group = template["Resources"][logging["LogGroup"]["Ref"]]["Properties"]
        assert group.get("LogGroupClass", "STANDARD") == "STANDARD", name


def alarm_metrics(alarm):
    """(namespace, name, {dimension: value}, stat) of every metric an alarm reads."""
    p = alarm["Properties"]
    if "MetricName" in p:
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        return [(p["Namespace"], p["MetricName"], dims, p.get("Statistic", p.get("ExtendedStatistic")))]
    out = []
    for m in p["Metrics"]:
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            out.append((metric["Namespace"], metric["MetricName"], dims, m["MetricStat"]["Stat"]))
    return out


def sluice_alarms(t):
    return {
        n: a
        for n, a in ic.of_type(t, "AWS::CloudWatch::Alarm").items()
        if any(ns == NAMESPACE for ns, *_ in alarm_metrics(a))
    }


def dashboard_metrics(t):
    """(namespace, name, {dimension: value} or the set of SEARCH schema dimensions, stat) of every metric
    of the dashboard's widgets, the "." shorthand of a metric row expanded from the row before it."""
    out = []
    for w in ic.dashboard_widgets(t):
        if w["type"] != "metric":
            continue
        previous = []
        for row in w["properties"]["metrics"]:
            options = row[-1] if row and isinstance(row[-1], dict) else {}
            if "expression" in options:
                m = SEARCH.fullmatch(options["expression"])
                assert m, options["expression"]
                out.append((m["ns"], m["name"], set(m["dims"].split(",")), m["stat"]))
                continue
            fields = [x for x in row if not isinstance(x, dict)]
            fields = [previous[i] if x == "." else x for i, x in enumerate(fields)]
            previous = fields
            stat = options.get("stat", w["properties"].get("stat"))
            out.append((fields[0], fields[1], dict(zip(fields[2::2], fields[3::2])), stat))
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_r1_alarms_and_dashboard_read_the_metrics_as_the_functions_write_them(template, functions, variant):
    t = ic.render(template, VARIANTS[variant])
    alarms = sluice_alarms(t)
    assert set(alarms) == {"RejectionRateAlarm", "StoredLatencyAlarm", "DeadLetteredAlarm"}, variant
    read = [m for a in alarms.values() for m in alarm_metrics(a)]
    for ns, name, dims, _stat in read:
        assert ns == NAMESPACE and set(dims) == DIMENSIONS[name], (name, dims)
        assert dims["function"] in functions, (name, dims)
    shown = [m for m in dashboard_metrics(t) if m[0] == "NS"]
    for _ns, name, dims, _stat in shown:
        assert set(dims) == DIMENSIONS[name], (name, dims)
        if isinstance(dims, dict):
            assert dims["function"] in functions, (name, dims)
    # Every metric has its widget: the brief's list, plus requests by route and status.
    assert {name for _ns, name, *_ in shown} == set(DIMENSIONS), variant
    # No other namespace but AWS's own.
    assert {m[0] for m in dashboard_metrics(t)} == {"NS", "AWS/ApiGateway", "AWS/SQS", "AWS/Lambda", "AWS/DynamoDB"}


def test_r1_the_dashboard_shows_what_the_alarms_watch(template):
    shown = dashboard_metrics(ic.render(template))
    by_name = {}
    for _ns, name, dims, stat in shown:
        by_name.setdefault(name, []).append((dims, stat))
    # Processed by outcome: exactly the five outcomes of the process step.
    assert [d["outcome"] for d, _ in by_name["sluice_events_stored_total"]] == OUTCOMES
    assert sorted(s for _, s in by_name["sluice_stored_latency_seconds"]) == ["p50", "p99"]
    assert by_name["sluice_request_duration_seconds"] == [({"function", "route"}, "p99")]
    assert by_name["sluice_events_rejected_total"] == [({"function", "code"}, "Sum")]
    assert by_name["sluice_throttled_total"] == [({"function", "scope"}, "Sum")]


def test_t1_the_rejection_alarm_watches_stable_codes_of_refused_content(template):
    problems = PROBLEMS_MD.read_text(encoding="utf-8")
    alarm = template["Resources"]["RejectionRateAlarm"]["Properties"]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    codes = {}
    for mid, m in metrics.items():
        if "MetricStat" in m and m["MetricStat"]["Metric"]["MetricName"] == "sluice_events_rejected_total":
            dims = {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}
            assert dims["function"] == "ingest", mid
            codes[dims["code"]] = mid
    assert set(codes) == REJECTION_CODES
    assert not set(codes) & NOT_REJECTIONS
    for code in codes:
        assert f'<a id="{code}"></a>' in problems, f"{code} is not a stable code of docs/problems.md"
    # Every watched code is summed into the refusals, and the rate divides them by refusals plus accepted events.
    refused = metrics["refused"]["Expression"]
    assert sorted(re.findall(r"FILL\(([a-z]+),0\)", refused)) == sorted(codes.values())
    rate = metrics["rate"]
    assert rate["ReturnData"] is True and [m for m in metrics.values() if m.get("ReturnData")] == [rate]
    assert rate["Expression"] == {
        "Fn::Sub": "IF(refused >= ${RejectionAlarmMinRequests}, refused / (FILL(accepted,0) + refused), 0)"
    }
    assert metrics["accepted"]["MetricStat"]["Metric"]["MetricName"] == "sluice_events_accepted_total"
    assert {m["MetricStat"]["Period"] for m in metrics.values() if "MetricStat" in m} == {300}
    assert alarm["Threshold"] == {"Ref": "RejectionRateAlarmThreshold"}
    # At most 10 metrics in a metric math alarm (CloudWatch's hard limit).
    assert len([m for m in metrics.values() if "MetricStat" in m]) <= 10


def test_d3_the_latency_and_dead_letter_alarms_watch_the_process_function(template):
    latency = template["Resources"]["StoredLatencyAlarm"]["Properties"]
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("sluice_stored_latency_seconds", "p99")
    assert latency["Dimensions"] == [{"Name": "function", "Value": "process"}]
    assert latency["Threshold"] == {"Ref": "StoredLatencyAlarmSeconds"}
    assert "Statistic" not in latency
    dead = template["Resources"]["DeadLetteredAlarm"]["Properties"]
    assert dead["MetricName"] == "sluice_events_stored_total" and dead["Statistic"] == "Sum"
    assert dead["Dimensions"] == [{"Name": "function", "Value": "process"}, {"Name": "outcome", "Value": "dead_lettered"}]
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_the_metric_alarms_follow_the_stacks_alarm_conventions(template):
    params = template["Parameters"]
    for name, a in sluice_alarms(template).items():
        p = a["Properties"]
        assert "Condition" not in a, f"{name} is deployed by both API variants"
        assert p["AlarmActions"] == p["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert p["TreatMissingData"] == "notBreaching", name
        # EMF metrics arrive as the log lines are processed: rates and latencies alarm on M of N periods.
        if name != "DeadLetteredAlarm":
            assert (p["DatapointsToAlarm"], p["EvaluationPeriods"]) == (2, 3), name
        threshold = p["Threshold"]
        if isinstance(threshold, dict):
            param = params[threshold["Ref"]]
            assert param["Type"] == "Number" and "MinValue" in param and "Default" in param, name
    assert params["RejectionRateAlarmThreshold"]["MaxValue"] == 1
    assert 0 < params["RejectionRateAlarmThreshold"]["Default"] < 1
    assert params["RejectionAlarmMinRequests"]["MinValue"] >= 1  # the rate never divides by zero


def test_the_readme_documents_the_metrics_and_the_alarms():
    text = README.read_text(encoding="utf-8")
    assert "## Metrics" in text
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    for name, dims in DIMENSIONS.items():
        assert f"`{name}`" in section, name
        for d in dims:
            assert f"`{d}`" in section, (name, d)
    for word in ("MetricsNamespace", "SLUICE_METRICS_NAMESPACE", "once per invocation", "RejectionRateAlarm",
                 "StoredLatencyAlarm", "DeadLetteredAlarm", "RejectionRateAlarmThreshold",
                 "RejectionAlarmMinRequests", "StoredLatencyAlarmSeconds", "$0.30"):
        assert word in section, word
    for code in REJECTION_CODES:
        assert f"`{code}`" in section, code
