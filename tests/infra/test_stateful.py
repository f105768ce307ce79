"""The stateful stack: a table and a secret that survive refactors and stack deletion."""

from __future__ import annotations

from aws_cdk.assertions import Match

from infra.stacks.stateful import (
    ADMIN_KEY_LOGICAL_ID,
    BUCKET_LOGICAL_ID,
    PROVIDER_KEYS_LOGICAL_ID,
    TABLE_LOGICAL_ID,
)
from tests.infra.conftest import Synth


def test_stack_is_named_for_the_stage_and_termination_protected(synth: Synth) -> None:
    stack = synth.stacks["stateful"]
    assert stack.stack_name == "Switchboard-test-State"
    assert stack.termination_protection is True
    artifact = synth.assembly.get_stack_by_name("Switchboard-test-State")
    assert artifact.termination_protection is True


def test_logical_ids_are_pinned(synth: Synth) -> None:
    # These exact strings are the identity of the data: changing one replaces the table.
    assert TABLE_LOGICAL_ID == "SwitchboardTable"
    assert BUCKET_LOGICAL_ID == "SwitchboardBucket"
    assert PROVIDER_KEYS_LOGICAL_ID == "SwitchboardProviderKeys"
    template = synth.raw("stateful")
    assert template["Resources"]["SwitchboardTable"]["Type"] == "AWS::DynamoDB::Table"
    assert template["Resources"]["SwitchboardBucket"]["Type"] == "AWS::S3::Bucket"
    assert template["Resources"]["SwitchboardProviderKeys"]["Type"] == "AWS::SecretsManager::Secret"


def test_table_shape(synth: Synth) -> None:
    table = synth.raw("stateful")["Resources"]["SwitchboardTable"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "gsi1pk", "AttributeType": "S"},
        {"AttributeName": "gsi1sk", "AttributeType": "S"},
    ]
    # Lists a tenant's conversations newest first.
    assert props["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "gsi1",
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["DeletionProtectionEnabled"] is True
    # SSEEnabled without a key of our own is the AWS managed KMS key.
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert "TableName" not in props


def test_no_shared_credential_between_front_doors_and_worker(synth: Synth) -> None:
    # The worker authenticates each caller's own key: no internal token exists to leak.
    template = synth.template("stateful")
    template.resource_count_is("AWS::SecretsManager::Secret", 2)  # provider keys, admin key
    assert "SwitchboardInternalToken" not in synth.raw("stateful")["Resources"]
    template.has_resource(
        "AWS::SecretsManager::Secret",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {"GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True}}
            ),
        },
    )


def test_admin_key_secret_is_generated_pinned_and_retained(synth: Synth) -> None:
    assert ADMIN_KEY_LOGICAL_ID == "SwitchboardAdminKey"
    secret = synth.raw("stateful")["Resources"]["SwitchboardAdminKey"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["DeletionPolicy"] == "Retain"
    assert secret["Properties"]["GenerateSecretString"] == {
        "PasswordLength": 48,
        "ExcludePunctuation": True,
    }
    assert "SecretString" not in secret["Properties"], "no key value in the template"


def test_bucket_for_large_messages(synth: Synth) -> None:
    template = synth.raw("stateful")
    bucket = template["Resources"]["SwitchboardBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules[0]["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert "BucketName" not in props
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_local_stack_creates_the_same_table(synth: Synth) -> None:
    """`make dev` and the integration tests run against the table the stack deploys."""
    from unittest.mock import MagicMock

    from devstack.tables import create_table

    client = MagicMock()
    create_table(client, "local")
    created = client.create_table.call_args.kwargs
    ttl = client.update_time_to_live.call_args.kwargs["TimeToLiveSpecification"]
    props = synth.raw("stateful")["Resources"]["SwitchboardTable"]["Properties"]
    assert created["KeySchema"] == props["KeySchema"]
    assert created["AttributeDefinitions"] == props["AttributeDefinitions"]
    assert created.get("GlobalSecondaryIndexes", []) == props.get("GlobalSecondaryIndexes", [])
    assert ttl == {
        "Enabled": True,
        "AttributeName": props["TimeToLiveSpecification"]["AttributeName"],
    }


def test_bucket_lifecycle_expires_messages_with_their_conversation_and_sweeps_uploads(
    synth: Synth,
) -> None:
    from services.conversations.store import OFFLOADED_MESSAGE_TAG
    from services.documents.store import PENDING_UPLOAD_TAG

    props = synth.raw("stateful")["Resources"]["SwitchboardBucket"]["Properties"]
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    messages = rules["ConversationMessagesExpireWithTheirConversation"]
    assert messages["Status"] == "Enabled"
    assert messages["TagFilters"] == [
        {"Key": OFFLOADED_MESSAGE_TAG[0], "Value": OFFLOADED_MESSAGE_TAG[1]}
    ]
    # A message item lives conversation_retention_days (30) from its write; its object a day more.
    assert messages["ExpirationInDays"] == 31
    pending = rules["UploadsNeverCompleted"]
    assert pending["TagFilters"] == [{"Key": PENDING_UPLOAD_TAG[0], "Value": PENDING_UPLOAD_TAG[1]}]
    assert pending["ExpirationInDays"] == 8  # the longest upload URL (7 days) and a day
    multipart = rules["AbortIncompleteMultipartUploads"]
    assert multipart["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "TagFilters" not in multipart and "Prefix" not in multipart


def test_a_dev_stage_is_destroyable(dev_synth: Synth) -> None:
    assert dev_synth.stacks["stateful"].termination_protection is False
    artifact = dev_synth.assembly.get_stack_by_name("Switchboard-dev-State")
    assert artifact.termination_protection is False
    template = dev_synth.raw("stateful")
    for key in (
        "SwitchboardTable",
        "SwitchboardBucket",
        "SwitchboardAdminKey",
        "SwitchboardProviderKeys",
        "SwitchboardRunQueue",
        "SwitchboardRunDeadLetterQueue",
    ):
        assert template["Resources"][key]["DeletionPolicy"] == "Delete", key  # fmt: skip
    assert (
        template["Resources"]["SwitchboardTable"]["Properties"]["DeletionProtectionEnabled"]
        is False
    )
    # A non-empty bucket cannot be deleted: the stack empties it first.
    assert [r for r in template["Resources"].values() if r["Type"] == "Custom::S3AutoDeleteObjects"]


def test_other_stages_keep_their_data_and_are_protected(synth: Synth) -> None:
    template = synth.raw("stateful")
    for key in (
        "SwitchboardTable",
        "SwitchboardBucket",
        "SwitchboardAdminKey",
        "SwitchboardProviderKeys",
        "SwitchboardRunQueue",
        "SwitchboardRunDeadLetterQueue",
    ):
        assert template["Resources"][key]["DeletionPolicy"] == "Retain", key  # fmt: skip
    assert not [
        r for r in template["Resources"].values() if r["Type"] == "Custom::S3AutoDeleteObjects"
    ]
    assert synth.stacks["stateful"].termination_protection is True
