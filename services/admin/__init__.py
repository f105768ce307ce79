"""`python -m services.admin`: the operator's command line for tenants, keys and limits.

    python -m services.admin tenant create acme --name "Acme Corp" --budget-usd 500 --rpm 60
    python -m services.admin tenant set-limits acme --tpm 100000 --no-budget
    python -m services.admin key create --tenant acme --name ci      # the key is shown once
    python -m services.admin key rotate --tenant acme key_0123abcd
    python -m services.admin tenant list --json
    python -m services.admin usage acme --group-by day,model     # usage and cost

Every subcommand takes `--table` (default `$SWITCHBOARD_TABLE`), `--region` (default
`$AWS_REGION`, then boto3's) and `--json`. It talks to DynamoDB with boto3's usual
credentials (and `AWS_ENDPOINT_URL`, for the local stack of `make dev`). A missing region,
credentials or table, or an endpoint that does not answer, is one sentence saying what to
do (`services.cli`), not a traceback.

A command group is a module with `register(commands, common)` (see `services.admin.cli`);
adding one is adding its module's name to `COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from services.admin.cli import Context, common_options, fail
from services.cli import explain
from services.errors import APIError

# One line per command group.
COMMAND_MODULES = (
    "services.admin.tenant",
    "services.admin.key",
    "services.admin.usage",
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m services.admin",
        description="Manage Switchboard tenants, API keys and limits.",
    )
    commands = root.add_subparsers(dest="group", required=True, metavar="COMMAND")
    common = common_options()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands, common)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    context = Context.from_args(args)
    try:
        code: int = args.run(args, context)
    except APIError as error:
        return fail(error.message)
    except Exception as error:
        sentence = explain(error, table=context.table, region=context.region)
        if sentence is not None:
            return fail(sentence)
        if isinstance(error, ValueError):
            return fail(str(error))
        raise
    return code
