"""`python -m devstack` (what `make dev` runs): the whole platform on 127.0.0.1."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack import keep
from devstack.stack import LocalStack, StackConfig, StackError, check_ports


@dataclass(frozen=True, slots=True)
class Options:
    config: StackConfig
    new_keys: bool = False
    keep_state: bool = False
    data_dir: Path = keep.DIRECTORY


def parse_args(argv: list[str]) -> StackConfig:
    """The stack's configuration from the command line (nothing kept between runs is read:
    `main` adds that)."""
    return parse_options(argv).config


def parse_options(argv: list[str]) -> Options:
    p = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    p.add_argument("--api-port", type=int, default=3000, help="API Gateway emulator (default 3000)")
    p.add_argument("--stream-port", type=int, default=3001, help="stream front door (default 3001)")
    p.add_argument("--worker-port", type=int, default=8000, help="AI worker (default 8000)")
    p.add_argument(
        "--aws-port", type=int, default=5050, help="embedded DynamoDB/SQS/S3 (default 5050)"
    )
    p.add_argument(
        "--integration-timeout", type=float, default=29.0, metavar="SECONDS",
        help="the gateway Lambda's integration timeout (the control plane); longer calls "
        "answer 504 (default 29; AI routes stream from the workers for up to 15 min)",
    )  # fmt: skip
    p.add_argument(
        "--first-token-ms", type=float, default=300.0,
        help="simulator latency before the first chunk (default 300)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-ms", type=float, default=40.0, help="simulator latency between chunks (default 40)"
    )
    p.add_argument(
        "--api-key", default=None,
        help="use (and from now on keep) this development API key (sb-...)",
    )  # fmt: skip
    p.add_argument(
        "--new-keys", action="store_true",
        help="mint a new development API key and admin key (both are otherwise kept "
        "between runs in .devstack/keys.json)",
    )  # fmt: skip
    p.add_argument(
        "--keep-state", action="store_true",
        help="keep tables, objects and queued runs between runs in .devstack/state "
        "(default: in memory, gone when the stack stops)",
    )  # fmt: skip
    p.add_argument(
        "--data-dir", type=Path, default=keep.DIRECTORY, metavar="DIR",
        help="where the keys and the kept state live (default: .devstack at the "
        "repository's root)",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=2,
        help="worker processes behind the local load balancer (default 2)",
    )  # fmt: skip
    p.add_argument(
        "--lambda-concurrency", type=int, default=8, metavar="N",
        help="execution environments the gateway Lambda may have at once; requests beyond "
        "wait for one (default 8)",
    )  # fmt: skip
    p.add_argument(
        "--log-format", choices=("console", "json"), default="console",
        help="console: one readable line per request, and warnings (default); json: the "
        "JSON lines and EMF metrics the deployed components write",
    )  # fmt: skip
    a = p.parse_args(argv)
    if a.lambda_concurrency < 1:
        p.error("--lambda-concurrency must be at least 1")
    if a.api_key is not None and a.new_keys:
        p.error("--api-key and --new-keys ask for different development keys; give one")
    config = StackConfig(
        api_port=a.api_port,
        stream_port=a.stream_port,
        worker_port=a.worker_port,
        moto_port=a.aws_port,
        integration_timeout_seconds=a.integration_timeout,
        first_token_ms=a.first_token_ms,
        chunk_ms=a.chunk_ms,
        dev_api_key=a.api_key,
        workers=a.workers,
        lambda_concurrency=a.lambda_concurrency,
        inherit_credentials=True,
        log_format=a.log_format,
    )
    return Options(config, new_keys=a.new_keys, keep_state=a.keep_state, data_dir=a.data_dir)


PROVIDERS = (
    ("OPENAI_API_KEY", "OpenAI"),
    ("ANTHROPIC_API_KEY", "Anthropic"),
    ("SWITCHBOARD_BEDROCK_MODELS", "Bedrock"),
    ("SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL", "an OpenAI-compatible server"),
)


def models_line(environ: Mapping[str, str]) -> str:
    found = [name for variable, name in PROVIDERS if environ.get(variable)]
    if not found:
        return (
            "The model is the local simulator (not a real model); export OPENAI_API_KEY "
            "(or another provider's settings) before `make dev` for real ones."
        )
    return (
        f"Models: {', '.join(found)} (configured in your environment) and the local "
        "simulator; GET /v1/models lists them."
    )


def state_line(stack: LocalStack) -> str:
    """Where the platform's state lives, and for how long."""
    path = stack.config.state_file
    if path is None:
        return (
            "in memory: tables, objects and queued runs go when the stack stops "
            "(`make dev ARGS=--keep-state` keeps them)"
        )
    restored = stack.restored or {}
    return (
        f"kept in {keep.shown(path)}: restored {restored.get('items', 0):,} items, "
        f"{restored.get('objects', 0):,} objects and {restored.get('messages', 0):,} queued "
        f"messages in {restored.get('seconds', 0):.2f} s; saved when the stack stops"
    )


def banner(stack: LocalStack, keys_note: str = "") -> str:
    key = stack.api_key
    return f"""
Switchboard is running on 127.0.0.1. {models_line(os.environ)}

  API (API Gateway emulator)   {stack.api_url}
  Streaming (Function URL)     {stack.stream_url}
  Workers (load balancer)      {stack.worker_url}  ({len(stack.worker_urls)} processes)
  DynamoDB/SQS/S3 (moto)       {stack.aws_endpoint}
  Web console                  {stack.stream_url.removesuffix("/v1")}/console/  (streams live; also on the API's port)

  Development API key          {key}   (tenant "dev")
  Admin key                    {stack.admin_key}
  Keys                         {keys_note or "new for this run"}
  State                        {state_line(stack)}

Try it:

  curl -s {stack.api_url}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "local/simulator", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  curl -N {stack.stream_url}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "local/simulator", "stream": true, "messages": [{{"role": "user", "content": "Hello"}}]}}'

  .venv/bin/python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{stack.stream_url}", api_key="{key}")
for chunk in client.chat.completions.create(
    model="local/simulator", messages=[{{"role": "user", "content": "Hello"}}], stream=True
):
    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="", flush=True)
print()
PY

Tenants, keys and limits (the admin API, with the admin key; or the admin CLI):

  curl -s {stack.api_url}/admin/tenants -H "Authorization: Bearer {stack.admin_key}"
  AWS_ENDPOINT_URL={stack.aws_endpoint} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \\
    .venv/bin/python -m services.admin tenant list --table {stack.config.table} --region us-east-1

Ctrl-C stops everything.
"""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    config, directory = options.config, options.data_dir
    try:
        check_ports(config)  # before anything is written: a second `make dev` changes nothing
    except StackError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    kept, keys_note = keep.keys(directory, new=options.new_keys, api_key=config.dev_api_key)
    config.dev_api_key, config.admin_key = kept.api_key, kept.admin_key
    if options.keep_state:
        config.state_file = keep.state_file(directory)
    # The stack's own lines (a component restarted) go to stderr with the components' logs.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("devstack: %(message)s"))
    stack_log = logging.getLogger("switchboard.devstack")
    stack_log.addHandler(handler)
    stack_log.setLevel(logging.INFO)
    stack_log.propagate = False
    stack = LocalStack(config)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            stack.start()
        except StackError as exc:
            print(f"make dev: {exc}", file=sys.stderr)
            return 1
        if stack.api_key_replaced is not None:
            keys_note = f"{stack.api_key_replaced}: a new one, now kept"
            keep.save_keys(keep.DevKeys(stack.api_key, stack.admin_key), directory)
        print(banner(stack, keys_note), flush=True)
        # The stack restarts a component that dies; only the loss of the embedded AWS
        # services (and the state in them) ends it.
        while (failure := stack.failure()) is None:
            time.sleep(0.5)
        print(f"make dev: {failure}; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    finally:
        # A second Ctrl-C (or the terminal's SIGTERM) must not cut the shutdown short; it
        # is bounded, and children die with this process in any case.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        began = time.monotonic()
        stack.stop()
        stack_log.info("stopped in %.1f s", time.monotonic() - began)


if __name__ == "__main__":
    sys.exit(main())
