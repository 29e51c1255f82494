#!/usr/bin/env python3
"""Writes a copy of infra/template.yaml with every optional feature switched on by default.

checkov drops resources whose Condition is false under the parameters' defaults, so the optional
CloudTrail trail (S-3, R-1), WAF (D-1), custom domain (S-1), VPC mode (I-3) and SigV4 ingest (S-1)
would go unchecked. scripts/check-infra.sh scans this variant too. Usage: all-options.py IN OUT
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


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    lines = open(src, encoding="utf-8").read().split("\n")
    current = None
    seen = set()
    for i, line in enumerate(lines):
        m = re.match(r"^  ([A-Za-z0-9]+):\s*$", line)
        if m:
            current = m.group(1)
            continue
        if current in OVERRIDES and re.match(r"^    Default:", line):
            lines[i] = f"    Default: {OVERRIDES[current]}"
            seen.add(current)
            current = None
    missing = set(OVERRIDES) - seen
    if missing:
        sys.exit(f"all-options.py: no Default found for {sorted(missing)}")
    open(dst, "w", encoding="utf-8").write("\n".join(lines))


if __name__ == "__main__":
    main()
