"""Least-privilege grants: each role gets the data actions its code calls, named one by one
(no ``*`` in a data-plane action), on the table, its index and the tenants' prefix.

CDK's ``grant_read_write_data``/``grant_read_write`` give ``Scan``, ``BatchGetItem``,
``s3:DeleteObject*`` and ``s3:List*`` on everything; the code uses none of those widely.
The action sets below are read from the boto3 calls in ``services/``: a transaction is
authorized by the actions of its parts (Put, Update, Delete, ConditionCheck).
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

# Every object Switchboard writes is under tenants/<tenant id>/ (conversations, documents,
# document text): services/conversations/store.py, services/documents/store.py.
TENANT_PREFIX = "tenants/"

# The front doors' and the worker's table work: key and tenant lookups, conversations,
# runs, usage records (TransactWriteItems), deleting a conversation (BatchWriteItem).
TABLE_READ_WRITE = (
    "GetItem",
    "Query",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "ConditionCheckItem",
)
# The edge authorizer only looks a key up.
TABLE_KEY_LOOKUP = ("GetItem",)
# Objects under the tenants' prefix: offloaded messages (written with a tag), documents
# (copied on move, so read and written), their extracted text.
OBJECT_READ_WRITE = ("GetObject", "PutObject", "PutObjectTagging", "DeleteObject")
# The worker also completes presigned uploads (it removes their pending tag).
WORKER_OBJECTS = (*OBJECT_READ_WRITE, "DeleteObjectTagging")


def grant_table(
    grantee: iam.IGrantable,
    table: dynamodb.ITable,
    actions: Iterable[str],
    *,
    indexes: Iterable[str] = (),
) -> None:
    """``dynamodb:<action>`` for each action, on the table and the named indexes."""
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=[f"dynamodb:{action}" for action in actions],
            resources=[table.table_arn, *(f"{table.table_arn}/index/{i}" for i in indexes)],
        )
    )


def grant_tenant_objects(
    grantee: iam.IGrantable, bucket: s3.IBucket, actions: Iterable[str] = OBJECT_READ_WRITE
) -> None:
    """Object actions under ``tenants/``, and listing only that prefix."""
    principal = grantee.grant_principal
    principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=[f"s3:{action}" for action in actions],
            resources=[bucket.arn_for_objects(f"{TENANT_PREFIX}*")],
        )
    )
    principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{TENANT_PREFIX}*"]}},
        )
    )
