"""The names of Switchboard's own CloudWatch metrics, written once.

The worker and the Lambdas emit them as embedded metric format (EMF) log lines; the CDK
observability stack reads the same names for its dashboard and alarms, so a rename cannot
leave an alarm watching a metric nobody emits. (Infrastructure may import this module;
it imports nothing.)

Dimensions stay bounded: ``Service`` (which process), ``Route`` (a route template from
``services/frontdoor/routes.py``, never a concrete path), ``ErrorType`` (an error
envelope's type) and ``Provider`` (a provider adapter), never a key, tenant or request.
Each metric and dimension-value combination is a custom metric billed every month, so:
every metric is emitted per ``Service`` (what the alarms and the dashboard read), only
``PER_ROUTE`` metrics also per ``Service`` and ``Route`` (and ``PER_ERROR_TYPE`` and
``PER_PROVIDER`` ones per error type and provider); the route is still a property
of every EMF record, so Logs Insights can break any metric down by route for free.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "Switchboard"

# Dimensions.
SERVICE: Final = "Service"
ROUTE: Final = "Route"
ERROR_TYPE: Final = "ErrorType"  # an error envelope's `type` (a fixed set: services/errors.py)
PROVIDER: Final = "Provider"  # a provider adapter's name (openai, anthropic, bedrock...)
DIMENSIONS: Final = (SERVICE, ROUTE, ERROR_TYPE, PROVIDER)
# CloudWatch treats each dimension set as its own metric: one emitted only per route would
# never reach an alarm, which reads the per-service set.
PER_SERVICE: Final = (SERVICE,)
PER_SERVICE_AND_ROUTE: Final = (SERVICE, ROUTE)
PER_SERVICE_AND_ERROR_TYPE: Final = (SERVICE, ERROR_TYPE)
PER_SERVICE_AND_PROVIDER: Final = (SERVICE, PROVIDER)

# Values of the Service dimension.
WORKER_SERVICE: Final = "worker"
GATEWAY_SERVICE: Final = "gateway"
STREAM_SERVICE: Final = "stream"
AUTHORIZER_SERVICE: Final = "authorizer"

# Metrics (unit in brackets).
REQUESTS: Final = "Requests"  # [Count] requests answered
ERRORS: Final = "Errors"  # [Count] requests answered with a 5xx
CLIENT_ERRORS: Final = "ClientErrors"  # [Count] requests answered with a 4xx
LATENCY: Final = "Latency"  # [Milliseconds] a request, answered whole (a stream to its end)
BUDGET_REFUSALS: Final = "BudgetRefusals"  # [Count] calls refused by a tenant or key budget
TIME_TO_FIRST_TOKEN: Final = "TimeToFirstToken"  # [Milliseconds] first streamed token
STREAMS_OPEN: Final = "StreamsOpen"  # [Count] SSE streams open in a task
PROVIDER_ATTEMPTS: Final = "ProviderAttempts"  # [Count] calls to a provider, retries included
PROVIDER_RETRIES: Final = "ProviderRetries"  # [Count] attempts that repeat a failed one
FALLBACKS: Final = "Fallbacks"  # [Count] calls answered by a fallback model
CIRCUIT_OPENS: Final = "CircuitOpens"  # [Count] provider circuit breakers opened
TOKENS: Final = "Tokens"  # [Count] prompt + completion tokens
COST_USD: Final = "CostUSD"  # [None] priced cost of the calls, in US dollars
RUN_QUEUE_AGE: Final = "RunQueueAge"  # [Seconds] how long a queued run waited for a worker

ALL: Final = (
    REQUESTS,
    ERRORS,
    CLIENT_ERRORS,
    LATENCY,
    BUDGET_REFUSALS,
    TIME_TO_FIRST_TOKEN,
    STREAMS_OPEN,
    PROVIDER_ATTEMPTS,
    PROVIDER_RETRIES,
    FALLBACKS,
    CIRCUIT_OPENS,
    TOKENS,
    COST_USD,
    RUN_QUEUE_AGE,
)
UNITS: Final = {
    REQUESTS: "Count",
    ERRORS: "Count",
    CLIENT_ERRORS: "Count",
    LATENCY: "Milliseconds",
    BUDGET_REFUSALS: "Count",
    TIME_TO_FIRST_TOKEN: "Milliseconds",
    STREAMS_OPEN: "Count",
    PROVIDER_ATTEMPTS: "Count",
    PROVIDER_RETRIES: "Count",
    FALLBACKS: "Count",
    CIRCUIT_OPENS: "Count",
    TOKENS: "Count",
    COST_USD: "None",
    RUN_QUEUE_AGE: "Seconds",
}
# Metrics also emitted per route (PER_SERVICE_AND_ROUTE as well as PER_SERVICE).
PER_ROUTE: Final = (ERRORS,)
# Metrics also emitted per error type, and per provider.
PER_ERROR_TYPE: Final = (ERRORS, CLIENT_ERRORS)
PER_PROVIDER: Final = (PROVIDER_ATTEMPTS, PROVIDER_RETRIES, CIRCUIT_OPENS)
