"""Issue 13 in the templates: alarms to an SNS topic, one dashboard, access logs,
throttling and the optional WAF."""

from __future__ import annotations

import json
from typing import Any

from services import metrics_names as names
from tests.infra.conftest import Synth, only, resources


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    found = resources(synth.raw("observability"), "AWS::CloudWatch::Alarm")
    return {key: a["Properties"] for key, a in found.items()}


def _alarm(synth: Synth, prefix: str) -> dict[str, Any]:
    (found,) = [a for k, a in _alarms(synth).items() if k.startswith(prefix)]
    return found


def test_every_alarm_notifies_the_topic_on_alarm_and_ok(synth: Synth) -> None:
    (topic,) = resources(synth.raw("observability"), "AWS::SNS::Topic")
    alarms = _alarms(synth)
    assert len(alarms) >= 14
    for key, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic}], key
        assert alarm["OKActions"] == [{"Ref": topic}], key
        assert alarm["TreatMissingData"] == "notBreaching", key


def test_the_issues_alarms_watch_the_right_metrics(synth: Synth) -> None:
    rate = _alarm(synth, "Api5xxRate")
    expression = next(m for m in rate["Metrics"] if "Expression" in m)["Expression"]
    assert "errors / requests" in expression
    metric_names = {
        m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"] if "MetricStat" in m
    }
    assert metric_names == {"5XXError", "Count"}
    assert rate["Threshold"] == 1

    first_token = _alarm(synth, "FirstTokenP99")
    assert (first_token["Namespace"], first_token["MetricName"]) == (
        names.NAMESPACE,
        names.TIME_TO_FIRST_TOKEN,
    )
    assert first_token["ExtendedStatistic"] == "p99"
    assert first_token["Dimensions"] == [{"Name": names.SERVICE, "Value": names.WORKER_SERVICE}]

    for function in ("Gateway", "Authorizer", "Stream"):
        assert _alarm(synth, f"{function}Errors")["MetricName"] == "Errors"
        assert _alarm(synth, f"{function}Throttles")["MetricName"] == "Throttles"
    assert _alarm(synth, "UnhealthyWorkers")["MetricName"] == "UnHealthyHostCount"
    assert _alarm(synth, "LoadBalancer5xx")["MetricName"] == "HTTPCode_ELB_5XX_Count"
    assert _alarm(synth, "Worker5xx")["MetricName"] == "HTTPCode_Target_5XX_Count"

    dlq = _alarm(synth, "RunDeadLetters")
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (dlq["Threshold"], dlq["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert "RunDeadLetterQueue" in json.dumps(dlq["Dimensions"])
    oldest = _alarm(synth, "OldestRunMessage")
    assert oldest["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert "RunQueue" in json.dumps(oldest["Dimensions"])

    at_max = _alarm(synth, "WorkersAtMaximum")
    assert (at_max["Namespace"], at_max["MetricName"]) == (
        "ECS/ContainerInsights",
        "RunningTaskCount",
    )
    assert at_max["Threshold"] == synth.config.worker_max_count
    assert at_max["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

    refusals = _alarm(synth, "BudgetRefusalSpike")
    assert (refusals["Namespace"], refusals["MetricName"]) == (
        names.NAMESPACE,
        names.BUDGET_REFUSALS,
    )


def test_the_dashboard_shows_the_switchboard_metrics(synth: Synth) -> None:
    dashboard = only(synth.raw("observability"), "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["DashboardBody"])
    widgets = json.loads("".join(str(part) for part in dashboard["DashboardBody"]["Fn::Join"][1]))
    shown = {
        (m[1], m[3])  # (metric name, Service)
        for widget in widgets["widgets"]
        for m in widget["properties"].get("metrics", [])
        if m[0] == names.NAMESPACE
    }
    # Every metric the code emits is on the dashboard (for the worker), and so are the front
    # doors' requests, errors and latency.
    assert {n for n, _ in shown} == set(names.ALL)
    for door in (names.GATEWAY_SERVICE, names.AUTHORIZER_SERVICE, names.STREAM_SERVICE):
        for metric in (names.REQUESTS, names.ERRORS, names.LATENCY):
            assert (metric, door) in shown, (metric, door)
    assert "ApproximateAgeOfOldestMessage" in body and "RunningTaskCount" in body


def test_an_alarm_email_is_subscribed_only_when_configured(
    synth: Synth, https_synth: Synth
) -> None:
    assert not resources(synth.raw("observability"), "AWS::SNS::Subscription")
    subscription = only(https_synth.raw("observability"), "AWS::SNS::Subscription")
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "ops@example.com"


def test_access_logs_and_stage_throttling(synth: Synth) -> None:
    template = synth.raw("frontdoor")
    stage = only(template, "AWS::ApiGateway::Stage")
    access = stage["AccessLogSetting"]
    assert "AccessLogs" in json.dumps(access["DestinationArn"])
    fields = json.loads(access["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert {"ip", "method", "route", "status", "latencyMs", "authorizerError"} <= set(fields)
    assert not any("authorization" in v.lower() or "api-key" in v.lower() for v in fields.values())
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == 200
    assert settings["ThrottlingBurstLimit"] == 400
    assert settings["LoggingLevel"] == "ERROR"
    assert settings["DataTraceEnabled"] is False  # never log bodies (keys, prompts)
    # Access logs need API Gateway's account-level CloudWatch role.
    account = only(template, "AWS::ApiGateway::Account")
    assert "CloudWatchRole" in json.dumps(account["CloudWatchRoleArn"])
    groups = resources(template, "AWS::Logs::LogGroup").values()
    execution = [g for g in groups if "LogGroupName" in g["Properties"]]
    assert len(execution) == 1
    assert "API-Gateway-Execution-Logs_" in json.dumps(execution[0]["Properties"]["LogGroupName"])
    assert execution[0]["Properties"]["RetentionInDays"] == 30


def test_the_account_role_can_be_left_to_another_stack(https_synth: Synth) -> None:
    assert not resources(https_synth.raw("frontdoor"), "AWS::ApiGateway::Account")


def test_waf_is_off_by_default_and_guards_the_stage_when_on(
    synth: Synth, https_synth: Synth
) -> None:
    assert not resources(synth.raw("frontdoor"), "AWS::WAFv2::WebACL")
    template = https_synth.raw("frontdoor")
    acl = only(template, "AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL"
    rules = {r["Name"]: r for r in acl["Rules"]}
    managed = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert managed["VendorName"] == "AWS"
    # Prompts exceed the managed rule's 8 KB body limit: counted, not blocked.
    assert managed["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}
    ]
    rate = rules["RequestsPerIp"]
    assert rate["Statement"]["RateBasedStatement"] == {"Limit": 2000, "AggregateKeyType": "IP"}
    assert rate["Action"] == {"Block": {}}
    association = only(template, "AWS::WAFv2::WebACLAssociation")
    assert "restapis" in json.dumps(association["ResourceArn"])
