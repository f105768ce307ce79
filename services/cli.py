"""What the command lines share: an AWS client failure becomes one sentence saying what to
do (which option or variable to set, which stack holds the table, whether `make dev` is
running), never a traceback.

`python -m services.admin ...` and `python -m services.usage report ...` call DynamoDB with
boto3's usual configuration: `--region` (else `AWS_REGION`), the credentials chain, and
`AWS_ENDPOINT_URL` for the local stack of `make dev`.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

LOCAL_STACK = (
    "For `make dev`'s local stack: AWS_ENDPOINT_URL=http://127.0.0.1:5050 "
    "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local, --region us-east-1 and "
    "--table switchboard-local."
)


def explain(error: BaseException, *, table: str | None, region: str | None) -> str | None:
    """A sentence for an AWS client error `error` (None when it is not one)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL")
    if isinstance(error, NoRegionError):
        return (
            "No AWS region is set: pass --region with the region of the State stack (or set "
            f"AWS_REGION). {LOCAL_STACK}"
        )
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return (
            "No AWS credentials were found: configure them (`aws configure`, AWS_PROFILE, or "
            f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). {LOCAL_STACK}"
        )
    if isinstance(error, EndpointConnectionError):
        url = str(error.kwargs.get("endpoint_url") or endpoint or "the DynamoDB endpoint")
        host = urlparse(url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            return (
                f"Cannot connect to {url}: nothing is listening there. Is `make dev` "
                "running? Start it, or point AWS_ENDPOINT_URL at its DynamoDB "
                "(http://127.0.0.1:5050 by default)."
            )
        return (
            f"Cannot connect to {url}: check the network, --region, and AWS_ENDPOINT_URL "
            "(unset it to reach AWS itself)."
        )
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        where = f"region {region or os.environ.get('AWS_REGION') or 'default'}"
        if endpoint:
            where += f" at {endpoint}"
        if code == "ResourceNotFoundException":
            return (
                f"The table '{table}' does not exist in {where}: pass --table with the "
                "State stack's table name and --region with its region (the stack outputs "
                f"name the table). {LOCAL_STACK}"
            )
        if code in (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "ExpiredTokenException",
            "ExpiredToken",
        ):
            return (
                f"AWS refused the credentials ({code}: {message}): refresh them, or pick "
                "another profile (AWS_PROFILE)."
            )
        if code in ("AccessDeniedException", "AccessDenied"):
            return (
                f"AWS denied access to the table '{table}' in {where} ({message}): use "
                "credentials allowed to read and write it."
            )
        return f"DynamoDB answered {code or 'an error'}: {message or error}."
    return None
