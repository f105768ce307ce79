"""What operators watch: one dashboard, the alarms, and the SNS topic they notify.

Metrics come from AWS (API Gateway, Lambda, ALB, SQS, ECS Container Insights) and from
Switchboard's own EMF metrics (namespace and names in ``services/metrics_names.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from services import metrics_names as names

FIVE_MINUTES = Duration.minutes(5)


@dataclass(frozen=True)
class Watched:
    """The resources of the other stacks that the alarms and the dashboard read."""

    api: apigw.RestApi
    functions: dict[str, lambda_.IFunction]  # "gateway", "authorizer", "stream"
    load_balancer: elbv2.IApplicationLoadBalancer
    target_group: elbv2.IApplicationTargetGroup
    run_queue: sqs.IQueue
    run_dead_letters: sqs.IQueue
    cluster_name: str
    service_name: str


class ObservabilityStack(Stack):
    """The dashboard, the alarms and the alarm topic of one stage."""

    def __init__(
        self, scope: Construct, id: str, *, config: StageConfig, watched: Watched, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            id,
            description=f"Switchboard {config.name}: dashboard, alarms, alarm topic",
            **kwargs,
        )
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"Switchboard {config.name} alarms",
            enforce_ssl=True,
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.alarms: dict[str, cw.Alarm] = {}
        action = cw_actions.SnsAction(self.topic)

        def alarm(
            key: str, metric: cw.IMetric, threshold: float, description: str, **kw: Any
        ) -> None:
            created = cw.Alarm(
                self,
                key,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=kw.pop("evaluation_periods", 1),
                comparison_operator=kw.pop(
                    "comparison_operator", cw.ComparisonOperator.GREATER_THAN_THRESHOLD
                ),
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                **kw,
            )
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms[key] = created

        api = watched.api
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        server_errors = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        error_rate = cw.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"requests": requests, "errors": server_errors},
            period=FIVE_MINUTES,
            label="API 5xx (% of requests)",
        )
        alarm(
            "Api5xxRate",
            error_rate,
            config.alarm_api_5xx_percent,
            f"More than {config.alarm_api_5xx_percent:g}% of API requests answered 5xx "
            "in 5 minutes.",
        )
        # Latency of a streamed answer is the whole stream, so p99 latency is watched where
        # users feel it: the first token.
        first_token = self._metric(names.TIME_TO_FIRST_TOKEN, "p99")
        alarm(
            "FirstTokenP99",
            first_token,
            config.alarm_first_token_p99_ms,
            f"p99 time to first token above {config.alarm_first_token_p99_ms} ms for 15 minutes.",
            evaluation_periods=3,
        )
        for name, function in watched.functions.items():
            title = name.capitalize()
            alarm(
                f"{title}Errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                0,
                f"The {name} Lambda failed (errors > 0 in 5 minutes).",
            )
            alarm(
                f"{title}Throttles",
                function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                0,
                f"The {name} Lambda was throttled (throttles > 0 in 5 minutes).",
            )
        alarm(
            "UnhealthyWorkers",
            watched.target_group.metrics.unhealthy_host_count(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            0,
            "A worker task failed its load balancer health check for 3 minutes.",
            evaluation_periods=3,
        )
        alarm(
            "LoadBalancer5xx",
            watched.load_balancer.metrics.http_code_elb(
                elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES, statistic="Sum"
            ),
            5,
            "The worker load balancer itself answered 5xx (no healthy task, or a task cut "
            "a connection) more than 5 times in 5 minutes.",
        )
        alarm(
            "Worker5xx",
            watched.target_group.metrics.http_code_target(
                elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES, statistic="Sum"
            ),
            10,
            "Worker tasks answered 5xx more than 10 times in 5 minutes.",
        )
        alarm(
            "RunDeadLetters",
            watched.run_dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            0,
            "A run failed for good: its message is in the dead-letter queue.",
        )
        alarm(
            "OldestRunMessage",
            watched.run_queue.metric_approximate_age_of_oldest_message(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            config.alarm_oldest_run_message_seconds,
            f"A run message has waited over {config.alarm_oldest_run_message_seconds} s: "
            "workers are not taking runs.",
            evaluation_periods=5,
        )
        running_tasks = cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={
                "ClusterName": watched.cluster_name,
                "ServiceName": watched.service_name,
            },
            period=Duration.minutes(1),
            statistic="Maximum",
        )
        alarm(
            "WorkersAtMaximum",
            running_tasks,
            config.worker_max_count,
            f"The worker service has run at its maximum of {config.worker_max_count} tasks "
            "for 15 minutes: raise worker_max_count or expect queueing.",
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=15,
        )
        refusals = self._metric(names.BUDGET_REFUSALS, "Sum")
        alarm(
            "BudgetRefusalSpike",
            refusals,
            config.alarm_budget_refusals_per_5_minutes,
            f"More than {config.alarm_budget_refusals_per_5_minutes} calls refused by a "
            "budget in 5 minutes.",
        )

        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=f"switchboard-{config.name}"
        )
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=4
            )
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="API requests and errors",
                left=[requests, server_errors, api.metric_client_error(period=FIVE_MINUTES)],
                right=[error_rate],
                width=12,
            ),
            cw.GraphWidget(
                title="API latency (p50, p99; a stream counts whole)",
                left=[
                    api.metric_latency(period=FIVE_MINUTES, statistic="p50"),
                    api.metric_latency(period=FIVE_MINUTES, statistic="p99"),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Worker: requests, 5xx, 4xx, budget refusals",
                left=[
                    self._metric(n, "Sum")
                    for n in (names.REQUESTS, names.ERRORS, names.CLIENT_ERRORS)
                ],
                right=[refusals],
                width=8,
            ),
            cw.GraphWidget(
                title="Time to first token (p50, p99)",
                left=[self._metric(names.TIME_TO_FIRST_TOKEN, "p50"), first_token],
                width=8,
            ),
            cw.GraphWidget(
                title="Streams open and worker tasks",
                left=[self._metric(names.STREAMS_OPEN, "Sum", period=Duration.minutes(1))],
                right=[running_tasks],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Providers: attempts, retries, fallbacks, circuit opens",
                left=[
                    self._metric(n, "Sum")
                    for n in (
                        names.PROVIDER_ATTEMPTS,
                        names.PROVIDER_RETRIES,
                        names.FALLBACKS,
                        names.CIRCUIT_OPENS,
                    )
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Tokens and cost (USD)",
                left=[self._metric(names.TOKENS, "Sum")],
                right=[self._metric(names.COST_USD, "Sum")],
                width=8,
            ),
            cw.GraphWidget(
                title="Runs: oldest message, wait for a worker (s); dead letters",
                left=[
                    watched.run_queue.metric_approximate_age_of_oldest_message(
                        period=Duration.minutes(1), statistic="Maximum"
                    ),
                    self._metric(names.RUN_QUEUE_AGE, "p99", period=Duration.minutes(1)),
                ],
                right=[
                    watched.run_dead_letters.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(1), statistic="Maximum"
                    )
                ],
                width=8,
            ),
        )
        doors = (names.GATEWAY_SERVICE, names.AUTHORIZER_SERVICE, names.STREAM_SERVICE)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Latency by component, p99 (ms; a stream counts whole)",
                left=[
                    self._metric(names.LATENCY, "p99", service=service).with_(label=service)
                    for service in (names.WORKER_SERVICE, *doors)
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Front doors: requests and 5xx",
                left=[
                    self._metric(names.REQUESTS, "Sum", service=s).with_(label=f"{s} requests")
                    for s in doors
                ],
                right=[
                    self._metric(names.ERRORS, "Sum", service=s).with_(label=f"{s} 5xx")
                    for s in doors
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors and throttles",
                left=[
                    f.metric_errors(period=FIVE_MINUTES, statistic="Sum", label=f"{n} errors")
                    for n, f in watched.functions.items()
                ],
                right=[
                    f.metric_throttles(period=FIVE_MINUTES, statistic="Sum", label=f"{n} throttles")
                    for n, f in watched.functions.items()
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Load balancer: healthy and unhealthy tasks, 5xx",
                left=[
                    watched.target_group.metrics.healthy_host_count(period=Duration.minutes(1)),
                    watched.target_group.metrics.unhealthy_host_count(period=Duration.minutes(1)),
                ],
                right=[
                    watched.load_balancer.metrics.http_code_elb(
                        elbv2.HttpCodeElb.ELB_5XX_COUNT, period=FIVE_MINUTES, statistic="Sum"
                    ),
                    watched.target_group.metrics.http_code_target(
                        elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                        period=FIVE_MINUTES,
                        statistic="Sum",
                    ),
                ],
                width=12,
            ),
        )

    @staticmethod
    def _metric(
        name: str,
        statistic: str,
        *,
        period: Duration = FIVE_MINUTES,
        service: str = names.WORKER_SERVICE,
    ) -> cw.Metric:
        """One of Switchboard's EMF metrics, over all routes of one component."""
        return cw.Metric(
            namespace=names.NAMESPACE,
            metric_name=name,
            dimensions_map={names.SERVICE: service},
            period=period,
            statistic=statistic,
        )
