"""Template-vs-code check: infra/template.yaml against crates/sluice-lambda/functions.toml.

The manifest lists, per function, the binary, the environment variables its code reads and the IAM
actions its code calls (sluice-lambda's own tests prove those lists exact against the code). This
module proves the template grants and sets exactly those (E-1, least privilege; I-1, nothing else in
the environment), plus a closed set of platform actions that the Lambda service needs with the
function's role, each allowed only when the template gives a reason for it:

- logs:CreateLogStream, logs:PutLogEvents: always (the function's log group);
- xray:PutTraceSegments, xray:PutTelemetryRecords: when Tracing is Active;
- the manifest's trigger_actions: when the function has an SQS event source, and only then;
- kms:GenerateDataKey and kms:Decrypt: when the function sends to a KMS-encrypted queue
  (kms:Decrypt alone when it only receives);
- the ENI actions of VPC mode: only inside an Fn::If, and only when the function has VpcConfig.

It also checks that every function has its own role (E-1) and that a queue's visibility timeout is
at least six times the timeout of the function consuming it (D-2: no redelivery while a batch is
still running). `table_access` proves from the template alone which role can read a table (S-6, I-5:
the webhook sources table, whose secrets forge deliveries), `api_operations` lists the deployed
routes for the comparison with the HTTP contract, and `code_routes` the routes the code serves (the
routers' `ROUTES`), of which all but `SERVE_ONLY` are deployed.

The template deploys one of two API variants (ApiType REST or HTTP) in front of the same functions.
`render` evaluates the template's conditions and Fn::If for given parameter values, as CloudFormation
would, so a test can look at exactly what one variant deploys; `dangling_references` lists what such a
rendering refers to without deploying it, `http_routes` lists the HTTP variant's routes and
`dashboard_widgets` reads a rendering's dashboard (for the checks of the functions' metrics, test_metrics.py).
"""
from __future__ import annotations

import copy
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cfnlint.decode import decode, decode_str

LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
TRACE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
VPC_ACTIONS = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
}
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}


@dataclass
class FunctionSpec:
    name: str
    binary: str
    env: set[str]
    actions: set[str]
    trigger_actions: set[str] = field(default_factory=set)


def load_manifest(path: Path | str) -> dict[str, FunctionSpec]:
    """Parses functions.toml; a missing file or field raises (never a silent pass)."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    specs = {}
    for name, f in data["functions"].items():
        specs[name] = FunctionSpec(
            name=name,
            binary=f["binary"],
            env=set(f["env"]),
            actions=set(f["actions"]),
            trigger_actions=set(f.get("trigger_actions", [])),
        )
    if not specs:
        raise ValueError(f"{path}: no functions")
    return specs


def _plain(node):
    """cfn-lint's nodes as plain dicts and lists (deep-copyable, comparable)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def load_template(path: Path | str) -> dict:
    """Parses a CloudFormation/SAM template; short tags (!Ref, !GetAtt, !Sub, !If ...) become their
    long forms ({"Ref": ..}, {"Fn::GetAtt": [..]}, ...)."""
    template, matches = decode(str(path))
    if matches or template is None:
        raise ValueError(f"{path}: {[str(m) for m in matches]}")
    return _plain(template)


def parse_template(text: str) -> dict:
    template, matches = decode_str(text)
    if matches or template is None:
        raise ValueError(str([str(m) for m in matches]))
    return _plain(template)


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _getatt_target(value) -> str | None:
    """The resource of {"Fn::GetAtt": [R, "Arn"]} (or "R.Arn"), else None."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        ga = value["Fn::GetAtt"]
        parts = ga.split(".", 1) if isinstance(ga, str) else ga
        if len(parts) == 2 and parts[1] == "Arn":
            return parts[0]
    return None


def _ref_target(value) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"} and isinstance(value["Ref"], str):
        return value["Ref"]
    return None


def _statements(doc) -> list[tuple[dict, bool]]:
    """(statement, conditional) for each statement of a policy document, both branches of Fn::If."""
    out = []
    for s in _as_list(doc.get("Statement", [])):
        if isinstance(s, dict) and "Fn::If" in s:
            for branch in s["Fn::If"][1:]:
                if isinstance(branch, dict) and "Effect" in branch:
                    out.append((branch, True))
        elif isinstance(s, dict):
            out.append((s, False))
    return out


def role_statements(template: dict, role: str) -> tuple[list[tuple[dict, bool]], list[str]]:
    """Every statement granted to `role` (inline policies and AWS::IAM::Policy resources attached to
    it), and the problems that make its permissions unknowable (managed policies)."""
    resources = template["Resources"]
    props = resources[role].get("Properties", {})
    stmts, problems = [], []
    for p in props.get("Policies", []):
        stmts += _statements(p["PolicyDocument"])
    if props.get("ManagedPolicyArns"):
        problems.append(f"role {role} has managed policies; their actions cannot be checked")
    for name, r in resources.items():
        if r.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            roles = [_ref_target(x) for x in _as_list(r["Properties"].get("Roles", []))]
            if role in roles:
                stmts += _statements(r["Properties"]["PolicyDocument"])
    return stmts, problems


def _encrypted_queues(template: dict) -> bool:
    return any(
        r.get("Type") == "AWS::SQS::Queue" and "KmsMasterKeyId" in r.get("Properties", {})
        for r in template["Resources"].values()
    )


def _sqs_events(props: dict) -> list[dict]:
    return [e["Properties"] for e in props.get("Events", {}).values() if e.get("Type") == "SQS"]


def check(template: dict, manifest: dict[str, FunctionSpec]) -> list[str]:
    """Every way the template differs from the manifest; empty when they match."""
    problems: list[str] = []
    resources = template["Resources"]
    functions = {n: r for n, r in resources.items() if r.get("Type") in FUNCTION_TYPES}
    by_binary: dict[str, list[str]] = {}
    for name, r in functions.items():
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        by_binary.setdefault(binary, []).append(name)
    specs_by_binary = {s.binary: s for s in manifest.values()}

    for binary, names in sorted(by_binary.items(), key=lambda kv: str(kv[0])):
        if binary not in specs_by_binary:
            problems.append(f"function {', '.join(names)}: binary {binary!r} is not in the manifest")
        elif len(names) > 1:
            problems.append(f"binary {binary} is deployed by several functions: {', '.join(names)}")
    for spec in manifest.values():
        if spec.binary not in by_binary:
            problems.append(f"manifest function {spec.name} ({spec.binary}) is not in the template")

    roles_seen: dict[str, str] = {}
    encrypted = _encrypted_queues(template)
    for name, r in sorted(functions.items()):
        binary = r.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        spec = specs_by_binary.get(binary)
        if spec is None:
            continue
        props = r.get("Properties", {})
        label = f"{name} ({spec.name})"

        if r.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{label}: not built with cargo-lambda (Metadata.BuildMethod)")
        for key, want in (("Runtime", "provided.al2023"), ("Handler", "bootstrap"), ("Architectures", ["arm64"])):
            if props.get(key) != want:
                problems.append(f"{label}: {key} is {props.get(key)!r}, expected {want!r}")

        env = set(props.get("Environment", {}).get("Variables", {}))
        for v in sorted(spec.env - env):
            problems.append(f"{label}: env {v} is read by the code but not set")
        for v in sorted(env - spec.env):
            problems.append(f"{label}: env {v} is set but the code never reads it")

        role = _getatt_target(props.get("Role"))
        if role is None or role not in resources:
            problems.append(f"{label}: no role of its own (Role must be !GetAtt <Role>.Arn of this template)")
            continue
        if role in roles_seen:
            problems.append(f"{label}: shares role {role} with {roles_seen[role]}")
        roles_seen[role] = label

        stmts, role_problems = role_statements(template, role)
        problems += [f"{label}: {p}" for p in role_problems]
        granted: set[str] = set()
        for s, conditional in stmts:
            if s.get("Effect") != "Allow":
                continue
            actions = set(_as_list(s.get("Action", [])))
            vpc = actions & VPC_ACTIONS
            if vpc and not (conditional and "VpcConfig" in props):
                problems.append(f"{label}: VPC actions granted outside an Fn::If on VPC mode: {sorted(vpc)}")
            granted |= actions

        sqs_events = _sqs_events(props)
        expected = set(spec.actions) | LOG_ACTIONS
        if props.get("Tracing") == "Active" or props.get("TracingConfig", {}).get("Mode") == "Active":
            expected |= TRACE_ACTIONS
        if sqs_events:
            if not spec.trigger_actions:
                problems.append(f"{label}: has an SQS event source but the manifest lists no trigger_actions")
            expected |= spec.trigger_actions
        elif spec.trigger_actions:
            problems.append(f"{label}: the manifest lists trigger_actions but the template gives it no trigger")
        if encrypted and "sqs:SendMessage" in spec.actions:
            expected |= {"kms:GenerateDataKey", "kms:Decrypt"}
        if encrypted and sqs_events:
            expected |= {"kms:Decrypt"}
        if "VpcConfig" in props:
            expected |= VPC_ACTIONS

        for a in sorted(expected - granted):
            problems.append(f"{label}: role {role} lacks {a}, which the function needs")
        for a in sorted(granted - expected):
            problems.append(f"{label}: role {role} grants {a}, which no code of the function uses")

        for event in sqs_events:
            queue = _getatt_target(event.get("Queue"))
            timeout = props.get("Timeout", 3)
            if queue is None or queue not in resources:
                problems.append(f"{label}: SQS event source is not a queue of this template")
                continue
            visibility = resources[queue].get("Properties", {}).get("VisibilityTimeout", 30)
            if not (isinstance(visibility, int) and isinstance(timeout, int)):
                problems.append(f"{label}: visibility timeout and function timeout must be literal numbers")
            elif visibility < 6 * timeout:
                problems.append(
                    f"{label}: queue {queue} visibility timeout {visibility}s is under six times the "
                    f"function timeout {timeout}s"
                )
    return problems


def refers_to(value, resource: str) -> bool:
    """Whether `value` names the template resource `resource` anywhere inside it: Ref, Fn::GetAtt (list
    or dotted form) or a ${resource} / ${resource.Attr} in an Fn::Sub string, at any depth."""
    if isinstance(value, dict):
        if _ref_target(value) == resource:
            return True
        ga = value.get("Fn::GetAtt")
        if ga is not None:
            target = ga.split(".", 1)[0] if isinstance(ga, str) else (ga[0] if ga else None)
            if target == resource:
                return True
        sub = value.get("Fn::Sub")
        text = sub if isinstance(sub, str) else (sub[0] if isinstance(sub, list) and sub else None)
        if isinstance(text, str) and re.search(r"\$\{" + re.escape(resource) + r"[.}]", text):
            return True
        return any(refers_to(v, resource) for v in value.values())
    if isinstance(value, list):
        return any(refers_to(v, resource) for v in value)
    return False


def strings_in(value) -> list[str]:
    """Every string inside `value` (Fn::Sub templates included), for wildcard checks."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def _is_dynamodb(actions: set[str]) -> bool:
    return any(a == "*" or a.lower().startswith("dynamodb:") for a in actions)


def table_access(template: dict, table: str, reader: str, actions: set[str]) -> list[str]:
    """Every way a role other than `reader` could read `table`, and every action `reader` has on it
    beyond `actions` (S-6, I-5): a statement whose Resource names the table (Fn::If branches and
    attached policy resources included), or a DynamoDB statement with a wildcard in its Resource or a
    NotResource, which would reach the table without naming it. Empty when only `reader` reads it."""
    problems: list[str] = []
    resources = template["Resources"]
    if table not in resources:
        return [f"no resource {table} in the template"]
    roles = sorted(n for n, r in resources.items() if r.get("Type") == "AWS::IAM::Role")
    if reader not in roles:
        problems.append(f"no role {reader} in the template")
    granted: set[str] = set()
    for role in roles:
        stmts, role_problems = role_statements(template, role)
        problems += [f"{role}: {p}" for p in role_problems]
        for s, _conditional in stmts:
            sid = s.get("Sid", "(no Sid)")
            acts = set(_as_list(s.get("Action", [])))
            if "NotAction" in s:
                problems.append(f"{role}: statement {sid} uses NotAction")
            if _is_dynamodb(acts) and "NotResource" in s:
                problems.append(f"{role}: statement {sid} grants {sorted(acts)} on NotResource")
            wild = [x for x in strings_in(s.get("Resource", [])) if "*" in x]
            if _is_dynamodb(acts) and wild:
                problems.append(f"{role}: statement {sid} grants {sorted(acts)} on wildcard resource {wild}")
            if not refers_to(s.get("Resource", []), table):
                continue
            if role != reader:
                problems.append(f"{role}: statement {sid} refers to {table}")
            elif s.get("Effect") == "Allow":
                granted |= acts
    for a in sorted(granted - actions):
        problems.append(f"{reader}: grants {a} on {table}, only {sorted(actions)} is allowed")
    return problems


def api_operations(template: dict) -> dict[tuple[str, str], dict]:
    """(path, method) -> operation of every API in the template's OpenAPI definition bodies."""
    ops = {}
    for r in template["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Api":
            for path, item in r["Properties"].get("DefinitionBody", {}).get("paths", {}).items():
                for method, op in item.items():
                    ops[(path, method)] = op
    return ops


# Routes `sluice serve` alone serves: its health check, its OpenAPI document, and the feed's Server-Sent Events
# stream, which cannot stream on AWS (API Gateway and Lambda buffer a whole response), where the feed is the
# long-poll GET /v1/feed. Every other route the routers serve is deployed by both API variants.
FEED_STREAM = ("/v1/feed/stream", "get")
SERVE_ONLY = {("/healthz", "get"), ("/openapi.json", "get"), FEED_STREAM}
# The routes of the ingest function; every other deployed route is the query function's.
INGEST_ROUTES = {("/v1/events", "post"), ("/v1/sources/{source_id}", "post")}


def code_routes(openapi_rs: Path | str) -> set[tuple[str, str]]:
    """(path, method) of every route the HTTP routers serve: `ROUTES` in crates/sluice-http/src/openapi.rs,
    whose test proves the published OpenAPI document lists exactly these. A file without them raises."""
    text = Path(openapi_rs).read_text(encoding="utf-8")
    consts = dict(re.findall(r'pub const ([A-Z_]+): &str = "([^"]*)";', text))
    body = re.search(r"pub const ROUTES: &\[Route\] = &\[(.*?)\n\];", text, re.S)
    if body is None:
        raise ValueError(f"{openapi_rs}: no ROUTES")
    routes = set()
    for method, path in re.findall(r'Route\s*\{\s*method:\s*"([a-z]+)",\s*path:\s*([A-Z_]+|"[^"]*"),?\s*\}', body.group(1)):
        routes.add((consts[path] if path in consts else path.strip('"'), method))
    if not routes:
        raise ValueError(f"{openapi_rs}: ROUTES lists no route")
    return routes


def mutated(template: dict) -> dict:
    """A deep copy to mutate in tests."""
    return copy.deepcopy(template)


# ---------------------------------------------------------------------------------------------------------
# Variants: the template as CloudFormation would deploy it for some parameter values
# ---------------------------------------------------------------------------------------------------------

PSEUDO_PARAMETERS = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}
_NO_VALUE = object()
_REQUIRED = object()  # a parameter without a default that the caller did not set


def parameter_values(template: dict, overrides: dict | None = None) -> dict[str, object]:
    """Every parameter's value: its default unless `overrides` sets it; CommaDelimitedList values are lists.
    An override for a parameter the template does not have raises (a misspelt name must not pass); a
    required parameter left unset may not be used by a condition."""
    params = template.get("Parameters", {})
    overrides = overrides or {}
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"no such parameters: {sorted(unknown)}")
    values = {}
    for name, p in params.items():
        v = overrides.get(name, p.get("Default", _REQUIRED))
        if p.get("Type") == "CommaDelimitedList" and isinstance(v, str):
            v = v.split(",")
        values[name] = v
    return values


def _scalar(value, values: dict):
    """The value of an intrinsic as used inside a condition (Ref of a parameter, Fn::Join), else itself."""
    if isinstance(value, dict) and "Ref" in value:
        v = values[value["Ref"]]
        if v is _REQUIRED:
            raise KeyError(f"a condition uses the required parameter {value['Ref']}: give it a value")
        return v
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, items = value["Fn::Join"]
        items = _scalar(items, values)
        return sep.join(str(_scalar(i, values)) for i in items)
    return value


def conditions(template: dict, values: dict) -> dict[str, bool]:
    """The value of every condition of the template for these parameter values."""
    defs = template.get("Conditions", {})
    memo: dict[str, bool] = {}

    def cond(name: str) -> bool:
        if name not in memo:
            memo[name] = ev(defs[name])
        return memo[name]

    def ev(c) -> bool:
        (fn, args), = c.items()
        if fn == "Fn::Equals":
            a, b = (_scalar(x, values) for x in args)
            return str(a) == str(b)
        if fn == "Fn::And":
            return all(ev(x) for x in args)
        if fn == "Fn::Or":
            return any(ev(x) for x in args)
        if fn == "Fn::Not":
            return not ev(args[0])
        if fn == "Condition":
            return cond(args)
        raise ValueError(f"unknown condition function {fn}")

    return {name: cond(name) for name in defs}


def _resolve(value, conds: dict[str, bool]):
    """`value` with every Fn::If decided and every AWS::NoValue removed."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return _resolve(yes if conds[name] else no, conds)
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for k, v in value.items():
            r = _resolve(v, conds)
            if r is not _NO_VALUE:
                out[k] = r
        return out
    if isinstance(value, list):
        return [r for r in (_resolve(v, conds) for v in value) if r is not _NO_VALUE]
    return value


def render(template: dict, overrides: dict | None = None, decide_ifs: bool = True) -> dict:
    """The template as deployed with these parameter values: resources and outputs whose condition is false
    are gone and every Fn::If is decided (with `decide_ifs=False` they stay as written, for checks that
    read the Fn::If itself, such as `check`'s VPC statements); `ParameterValues` holds each parameter's
    value and `Conditions` each condition's."""
    values = parameter_values(template, overrides)
    conds = conditions(template, values)
    out = {"ParameterValues": values, "Conditions": conds}
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, item in template.get(section, {}).items():
            if "Condition" in item and not conds[item["Condition"]]:
                continue
            item = {k: v for k, v in item.items() if k != "Condition"}
            kept[name] = _resolve(item, conds) if decide_ifs else copy.deepcopy(item)
        out[section] = kept
    out["Parameters"] = template.get("Parameters", {})
    return out


def _sub_names(text: str) -> set[str]:
    return {m.split(".", 1)[0] for m in re.findall(r"\$\{([A-Za-z0-9_:.]+)\}", text)}


def referenced_names(value) -> set[str]:
    """Every logical name `value` refers to: Ref (SAM's `Api.Stage` counts as `Api`), Fn::GetAtt, and
    ${Name} / ${Name.Attr} in Fn::Sub strings (names bound by the Sub's own variable map excluded)."""
    names: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                names.add(v.split(".", 1)[0])
            elif k == "Fn::GetAtt":
                names.add(v.split(".", 1)[0] if isinstance(v, str) else v[0])
            elif k == "Fn::Sub":
                if isinstance(v, str):
                    names |= _sub_names(v)
                else:
                    names |= _sub_names(v[0]) - set(v[1])
                    names |= referenced_names(v[1])
            else:
                names |= referenced_names(v)
    elif isinstance(value, list):
        for v in value:
            names |= referenced_names(v)
    return names


def dangling_references(rendered: dict) -> list[str]:
    """Every reference of a rendering (resources, DependsOn, outputs) to a name that is neither a deployed
    resource, a parameter nor a pseudo parameter: what CloudFormation would refuse for that variant."""
    known = set(rendered["Resources"]) | set(rendered["Parameters"]) | PSEUDO_PARAMETERS
    problems = []
    for section in ("Resources", "Outputs"):
        for name, item in rendered[section].items():
            refs = referenced_names(item.get("Properties", item.get("Value")))
            depends = item.get("DependsOn", [])
            refs |= set(depends if isinstance(depends, list) else [depends])
            for missing in sorted(refs - known):
                problems.append(f"{section}.{name} refers to {missing}, which this variant does not deploy")
    return problems


def of_type(template: dict, *types: str) -> dict[str, dict]:
    """The resources of these types, by logical name."""
    return {n: r for n, r in template["Resources"].items() if r.get("Type") in types}


def dashboard_widgets(rendered: dict, dashboard: str = "PipelineDashboard") -> list[dict]:
    """The widgets of a rendering's dashboard, its Fn::Sub body made JSON: each variable of the Sub's own map
    becomes its value when that is a plain string or an Fn::Sub template (else "x"), a Number parameter
    becomes 1, MetricsNamespace becomes "NS" and every other ${...} "x"."""
    body, variables = rendered["Resources"][dashboard]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = body
    for k, v in variables.items():
        value = v["Fn::Sub"] if isinstance(v, dict) and "Fn::Sub" in v else v if isinstance(v, str) else "x"
        text = text.replace("${" + k + "}", value)
    for name, p in rendered["Parameters"].items():
        if p.get("Type") == "Number":
            text = text.replace("${" + name + "}", "1")
    text = text.replace("${MetricsNamespace}", "NS")
    text = re.sub(r"\$\{[A-Za-z0-9:.]+\}", "x", text)
    return json.loads(text)["widgets"]


def http_routes(template: dict) -> dict[str, tuple[str, dict]]:
    """RouteKey -> (logical name, properties) of every AWS::ApiGatewayV2::Route."""
    out = {}
    for name, r in of_type(template, "AWS::ApiGatewayV2::Route").items():
        key = r["Properties"]["RouteKey"]
        if key in out:
            raise ValueError(f"route {key} is defined twice ({out[key][0]}, {name})")
        out[key] = (name, r["Properties"])
    return out
