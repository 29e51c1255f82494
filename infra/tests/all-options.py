#!/usr/bin/env python3
"""Writes a copy of infra/template.yaml with every optional feature switched on by default.

checkov drops resources whose Condition is false under the parameters' defaults, so the optional
CloudTrail trail (S-3, R-1), WAF (D-1), custom domain (S-1), VPC mode (I-3) and SigV4 ingest (S-1)
would go unchecked, and so would one of the two API variants (ApiType REST or HTTP) and one of the
HTTP API's two authorizers. scripts/check-infra.sh scans each variant:

- rest:     the REST API with every option on (template-all-options);
- http:     ApiType=HTTP with every option on, the Sluice key Lambda authorizer
            (template-http-all-options);
- http-jwt: as http, with the native JWT authorizer (HttpApiAuthorizer=Jwt) and the OIDC issuer
            and audience it needs (template-http-jwt-all-options).

Usage: all-options.py IN OUT [rest|http|http-jwt]   (rest when omitted)
"""
import re
import sys

OVERRIDES = {
    "EnableCloudTrail": "'true'",
    "EnableWaf": "'true'",
    "CustomDomainName": "events.example.com",
    "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
    "VpcId": "vpc-0123456789abcdef0",
    "VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "VpcRouteTableIds": "rtb-0123456789abcdef0",
    "IngestAuthorization": "AwsIam",
    "QueueOperatorArn": "arn:aws:iam::123456789012:role/sluice-operator",
}

VARIANTS = {
    "rest": {},
    "http": {"ApiType": "HTTP"},
    "http-jwt": {
        "ApiType": "HTTP",
        "HttpApiAuthorizer": "Jwt",
        "OidcIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
        "OidcAudience": "example-client-id",
    },
}


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    variant = sys.argv[3] if len(sys.argv) > 3 else "rest"
    if variant not in VARIANTS:
        sys.exit(f"all-options.py: unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    overrides = {**OVERRIDES, **VARIANTS[variant]}
    lines = open(src, encoding="utf-8").read().split("\n")
    current = None
    seen = set()
    in_parameters = False
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z]", line):
            # Only the Parameters section's defaults: a resource of the same name must stay as it is.
            in_parameters = line.rstrip() == "Parameters:"
            current = None
            continue
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            current = m.group(1) if in_parameters else None
            continue
        if current in overrides and re.match(r"^    Default:", line):
            lines[i] = f"    Default: {overrides[current]}"
            seen.add(current)
            current = None
    missing = set(overrides) - seen
    if missing:
        sys.exit(f"all-options.py: no Default found for {sorted(missing)}")
    open(dst, "w", encoding="utf-8").write("\n".join(lines))


if __name__ == "__main__":
    main()
