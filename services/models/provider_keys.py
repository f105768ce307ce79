"""Model provider keys: from the environment locally, from Secrets Manager in AWS.

In AWS the worker reads one secret (`SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN`), a JSON object
of environment names to values such as `{"OPENAI_API_KEY": "..."}`, once at start-up, and
lays it over the environment that the providers' `create(env)` read. The values are never
logged; a key that is absent leaves its provider unoffered. A changed key takes effect
when the worker restarts (a new deployment, or ECS replacing the task).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from services.config import ConfigError


def provider_env(env: Mapping[str, str], secrets_client: Callable[[], Any]) -> dict[str, str]:
    """`env`, with the provider-keys secret's entries laid over it when one is configured."""
    arn = env.get("SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN")
    merged = dict(env)
    if not arn:
        return merged
    raw = secrets_client().get_secret_value(SecretId=arn)["SecretString"]
    try:
        keys = json.loads(raw)
    except ValueError:
        raise ConfigError(
            "the provider-keys secret must be a JSON object such as "
            '{"OPENAI_API_KEY": "..."} (its value is not shown here)'
        ) from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ConfigError("the provider-keys secret must map names to string values")
    merged.update({str(k): v for k, v in keys.items() if v})
    return merged
