"""Data that must outlive every other stack: the state table, the bucket for large
conversation messages, the run queues and the secrets (admin key, provider keys)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnResource, Duration, RemovalPolicy, SecretValue, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from services.conversations.store import OFFLOADED_MESSAGE_TAG
from services.documents.store import PENDING_UPLOAD_TAG

# Pinned so that moving a construct in the tree can never replace the table or a secret.
TABLE_LOGICAL_ID = "SwitchboardTable"
BUCKET_LOGICAL_ID = "SwitchboardBucket"
PROVIDER_KEYS_LOGICAL_ID = "SwitchboardProviderKeys"
ADMIN_KEY_LOGICAL_ID = "SwitchboardAdminKey"
RUN_QUEUE_LOGICAL_ID = "SwitchboardRunQueue"
RUN_DLQ_LOGICAL_ID = "SwitchboardRunDeadLetterQueue"
# A backstop only: workers count a run's attempts themselves and move its message to the
# dead-letter queue when they give up. Until then a message is received again every
# watchdog interval while its run is alive, which this must not cut short.
RUN_QUEUE_MAX_RECEIVES = 1000
TTL_ATTRIBUTE = "expires_at"
# The runtime tags the objects the bucket's lifecycle rules select on.
MESSAGE_TAG = OFFLOADED_MESSAGE_TAG
# The longest presigned upload URL (7 days), and a day more.
PENDING_UPLOAD_DAYS = 8
# Lists a tenant's conversations, most recently updated first (services/conversations/store.py).
GSI1 = "gsi1"


class StatefulStack(Stack):
    """The single-table DynamoDB store, the bucket, the run queues and the secrets.

    There is no front-door-to-worker credential: the worker authenticates each caller's
    own key. (Stacks deployed before this held an ``InternalToken`` secret; removed from
    the template, a retained secret is left in the account, unused: delete it with
    ``aws secretsmanager delete-secret``. A dev stage's is deleted with the stack update.)

    All are retained when the stack is deleted and the stack is termination-protected
    (unless the stage config says otherwise), so losing them takes deliberate steps.
    """

    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            id,
            termination_protection=config.protected,
            description=f"Switchboard {config.name}: state table, bucket, run queues, secrets",
            **kwargs,
        )
        removal = RemovalPolicy.RETAIN if config.retains_data else RemovalPolicy.DESTROY

        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=config.retains_data,
            removal_policy=removal,
        )
        self.table.add_global_secondary_index(
            index_name=GSI1,
            partition_key=dynamodb.Attribute(name="gsi1pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="gsi1sk", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        _pin(self.table, TABLE_LOGICAL_ID)

        # Conversation messages too large for a DynamoDB item (tenants/<tid>/conversations/)
        # and documents (tenants/<tid>/documents/). Lifecycle:
        # - an offloaded message is tagged when written and expires a day after its
        #   DynamoDB item's TTL (a message item lives conversation_retention_days from its
        #   write), so it never outlives the conversation it belongs to;
        # - a presigned upload is tagged pending until the worker completes it (the tag is
        #   then removed); one never completed is deleted after the longest upload URL
        #   (7 days) and a day more (its pending record goes by the table's TTL);
        # - incomplete multipart uploads are aborted after a day.
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            removal_policy=removal,
            # A dev stage's bucket is emptied when its stack is deleted.
            auto_delete_objects=not config.retains_data,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ConversationMessagesExpireWithTheirConversation",
                    tag_filters={MESSAGE_TAG[0]: MESSAGE_TAG[1]},
                    expiration=Duration.days(config.conversation_retention_days + 1),
                ),
                s3.LifecycleRule(
                    id="UploadsNeverCompleted",
                    tag_filters={PENDING_UPLOAD_TAG[0]: PENDING_UPLOAD_TAG[1]},
                    expiration=Duration.days(PENDING_UPLOAD_DAYS),
                ),
                s3.LifecycleRule(
                    id="AbortIncompleteMultipartUploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
        )
        _pin(self.bucket, BUCKET_LOGICAL_ID)

        # The admin API's key (tenants, keys, limits): generated, read only by the gateway.
        # Operators fetch it with `aws secretsmanager get-secret-value`.
        self.admin_key = secretsmanager.Secret(
            self,
            "AdminKey",
            description=f"Switchboard {config.name}: the admin API key (tenants, keys, limits)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True
            ),
            removal_policy=removal,
        )
        _pin(self.admin_key, ADMIN_KEY_LOGICAL_ID)

        # Model provider keys, as a JSON object of environment names to values, e.g.
        # {"OPENAI_API_KEY": "...", "ANTHROPIC_API_KEY": "..."}. Deployed empty (no secret
        # in the template); set it with `aws secretsmanager put-secret-value`.
        self.provider_keys = secretsmanager.Secret(
            self,
            "ProviderKeys",
            description=f"Switchboard {config.name}: model provider API keys (JSON object)",
            secret_string_value=SecretValue.unsafe_plain_text("{}"),
            removal_policy=removal,
        )
        _pin(self.provider_keys, PROVIDER_KEYS_LOGICAL_ID)

        # Runs in progress are only messages here: the queues are state, not plumbing.
        self.run_dead_letters = sqs.Queue(
            self,
            "RunDeadLetterQueue",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            removal_policy=removal,
        )
        _pin(self.run_dead_letters, RUN_DLQ_LOGICAL_ID)
        self.run_queue = sqs.Queue(
            self,
            "RunQueue",
            visibility_timeout=Duration.seconds(60),
            retention_period=Duration.days(4),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.run_dead_letters, max_receive_count=RUN_QUEUE_MAX_RECEIVES
            ),
            removal_policy=removal,
        )
        _pin(self.run_queue, RUN_QUEUE_LOGICAL_ID)


def _pin(construct: Construct, logical_id: str) -> None:
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource)
    resource.override_logical_id(logical_id)
