"""cdk-nag AwsSolutions findings Switchboard accepts, each with the reason it is right here.

``tests/infra/test_nag.py`` runs the pack over every stack and fails on any finding that
no entry below matches, and on any entry that matches nothing (a stale acknowledgement
hides the next real finding). An entry names the rule (a finding id prefix, such as
``AwsSolutions-IAM5[Resource::*]``), the constructs it covers (a regular expression over
the construct path without the stack name) and the reason.

These are data, not imports: the CDK app does not depend on cdk-nag (a test tool).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    rule: str  # the finding id, or its prefix up to "[" for a finding with a detail
    path: str  # a regular expression matched against the construct path, stack excluded
    reason: str

    def covers(self, rule: str, construct_path: str) -> bool:
        path = construct_path.split("/", 1)[1] if "/" in construct_path else construct_path
        return rule.startswith(self.rule) and re.fullmatch(self.path, path) is not None


_FUNCTIONS = r"(Gateway|Authorizer|Stream)/Function"

ACKNOWLEDGEMENTS: tuple[Acknowledgement, ...] = (
    # -- API Gateway ---------------------------------------------------------------------
    Acknowledgement(
        "AwsSolutions-COG4",
        r"Api/.*",
        "Callers are platform API keys (OpenAI and Anthropic SDKs send a bearer token or "
        "x-api-key), not Cognito users: WORKER routes use the key authorizer, CONTROL routes "
        "are authenticated by the gateway Lambda against the same key store.",
    ),
    Acknowledgement(
        "AwsSolutions-APIG4",
        r"Api/Default/.*/Resource",
        "Methods without an API Gateway authorizer are the CONTROL routes and the 404/405 "
        "catch-alls, all answered by the gateway Lambda, which authenticates the caller's "
        "key (or the admin key) itself before it does anything; WORKER routes have the "
        "REQUEST authorizer.",
    ),
    Acknowledgement(
        "AwsSolutions-APIG2",
        r"Api/Resource",
        "Bodies are validated by the gateway and the worker, which answer in the error "
        "envelope of the route's wire format (OpenAI or Anthropic); an API Gateway model "
        "validator would answer in neither and would duplicate the route table's limits.",
    ),
    Acknowledgement(
        "AwsSolutions-APIG3",
        r"Api/DeploymentStage\.api/Resource",
        "The WAF web ACL (AWS managed common rules and a per-IP rate rule) is a stage "
        "option (waf=true); stage throttling and the key authorizer apply without it, and a "
        "WAF costs a fixed monthly fee a small deployment may not want.",
    ),
    Acknowledgement(
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AmazonAPIGatewayPushToCloudWatchLogs]",
        r"Api/CloudWatchRole/Resource",
        "The account-level role API Gateway uses to write access and execution logs; the "
        "AWS managed policy is the documented one and covers only CloudWatch Logs writes.",
    ),
    # -- Lambda --------------------------------------------------------------------------
    Acknowledgement(
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSLambdaBasicExecutionRole]",
        rf"{_FUNCTIONS}/ServiceRole/Resource",
        "AWSLambdaBasicExecutionRole grants only logs:CreateLogGroup, CreateLogStream and "
        "PutLogEvents, which every function needs to write its own log group.",
    ),
    Acknowledgement(
        "AwsSolutions-IAM5[Resource::*]",
        rf"{_FUNCTIONS}/ServiceRole/DefaultPolicy/Resource",
        "xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) take no "
        "resource: X-Ray has no resource-level permissions for them.",
    ),
    Acknowledgement(
        "AwsSolutions-L1",
        rf"{_FUNCTIONS}/Resource",
        "The runtime is the Python the bundles' bytecode is compiled with (python_version, "
        "the build machine's 3.11, supported on Lambda until June 2027): a .pyc only loads "
        "on the version that wrote it, and the compiled bundle is what keeps cold imports "
        "under 150 ms.",
    ),
    # -- Data access (least privilege: named actions, the tenants' prefix) ----------------
    Acknowledgement(
        "AwsSolutions-IAM5[Resource::",
        rf"({_FUNCTIONS}/ServiceRole|Task/TaskRole)/DefaultPolicy/Resource",
        "Object ARNs under tenants/ (every object Switchboard writes is a tenant's: "
        "conversation messages, documents, their text) with named actions only; the "
        "tenant is chosen per request from the authenticated key, so no narrower static "
        "ARN exists. Bedrock is limited to the configured model families "
        "(bedrock_model_families) in any region an inference profile routes to, and task "
        "protection to this cluster's tasks.",
    ),
    # -- Worker --------------------------------------------------------------------------
    Acknowledgement(
        "AwsSolutions-IAM5[Resource::*]",
        r"Task/ExecutionRole/DefaultPolicy/Resource",
        "ecr:GetAuthorizationToken takes no resource; the execution role's other actions "
        "(image pull, log writes) are on the image repository and the worker's log group.",
    ),
    Acknowledgement(
        "AwsSolutions-ECS2",
        r"Task/Resource",
        "The environment holds names and ARNs (table, bucket, queues, the provider-keys "
        "secret's ARN) and limits, never a secret: the worker reads provider keys from "
        "Secrets Manager itself, and the test suite checks no key reaches the task.",
    ),
    Acknowledgement(
        "AwsSolutions-ELB2",
        r"LoadBalancer/Resource",
        "The internal load balancer is reached only through the VPC link; API Gateway's "
        "access log records every call at the edge with its request id, and the worker "
        "writes one access line per request; ALB logs would need a bucket for a third copy.",
    ),
    Acknowledgement(
        "AwsSolutions-VPC7",
        r"Vpc/Resource",
        "The VPC holds only the worker, whose security groups admit nothing from the "
        "internet; flow logs would cost CloudWatch ingestion on every provider byte for no "
        "decision the access logs do not already support. Enable them per account if a "
        "compliance regime requires it.",
    ),
    # -- State ---------------------------------------------------------------------------
    Acknowledgement(
        "AwsSolutions-S1",
        r"Bucket/Resource",
        "Objects are read and written only by the stage's own roles on the tenants' "
        "prefix, every call is in the edge access log, and CloudTrail data events can be "
        "turned on for the bucket; server access logs would need a second bucket.",
    ),
    Acknowledgement(
        "AwsSolutions-SMG4",
        r"(AdminKey|ProviderKeys)/Resource",
        "ProviderKeys holds third-party API keys (OpenAI, Anthropic) that only their issuer "
        "can rotate; the admin key is rotated by an operator (put-secret-value), as a "
        "rotation Lambda would change it under the operators who hold it.",
    ),
)


def unacknowledged(findings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (rule, construct path) findings no acknowledgement covers."""
    return [f for f in findings if not any(a.covers(*f) for a in ACKNOWLEDGEMENTS)]


def unused(findings: list[tuple[str, str]]) -> list[Acknowledgement]:
    """The acknowledgements that cover no finding."""
    return [a for a in ACKNOWLEDGEMENTS if not any(a.covers(*f) for f in findings)]
