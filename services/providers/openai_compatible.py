"""`openai_compatible`: any server that speaks OpenAI's Chat Completions (Ollama, vLLM,
LM Studio, llama.cpp's server), at a configured base URL, with its own key or none.

The translation is the `openai` adapter's, in the older dialect these servers all read:
the reply limit goes as `max_tokens` and `developer` messages go as `system`.

Environment:
- `SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL` (required; without it the provider is not
  offered), e.g. `http://localhost:11434/v1` for Ollama.
- `SWITCHBOARD_OPENAI_COMPATIBLE_MODELS` (required with the base URL): comma-separated ids.
- `SWITCHBOARD_OPENAI_COMPATIBLE_API_KEY` (optional; without it no Authorization header).
- `SWITCHBOARD_OPENAI_COMPATIBLE_CONTEXT_TOKENS` (optional): the models' context window.
- `SWITCHBOARD_OPENAI_COMPATIBLE_TIMEOUT_<PHASE>_SECONDS`, as for every provider.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.config import env_int
from services.providers.base import DEFAULT_CONTEXT_WINDOW
from services.providers.openai import OpenAIProvider, OpenAISettings, model_list
from services.providers.timeouts import Timeouts


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible server: the `openai` adapter in the older dialect."""

    name = "openai_compatible"
    max_tokens_field = "max_tokens"
    developer_role = False


def create(env: Mapping[str, str]) -> OpenAICompatibleProvider | None:
    base_url = env.get("SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL") or None
    if base_url is None:
        return None
    return OpenAICompatibleProvider(
        OpenAISettings(
            models=model_list(env, "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS"),
            api_key=env.get("SWITCHBOARD_OPENAI_COMPATIBLE_API_KEY") or None,
            base_url=base_url,
            timeouts=Timeouts.from_env(env, "openai_compatible"),
            context_tokens=env_int(
                env,
                "SWITCHBOARD_OPENAI_COMPATIBLE_CONTEXT_TOKENS",
                DEFAULT_CONTEXT_WINDOW,
                minimum=16,
            ),
        )
    )
