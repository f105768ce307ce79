"""State that survives a restart (`python -m devstack.aws --state FILE`): tables, objects
and queued messages saved when the process stops, and restored into the resources of
the next run; never saved by a run whose state was not restored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from devstack.aws import RESTORE_PATH
from devstack.stack import ROOT, free_port
from devstack.tables import create_table

TABLE, BUCKET, QUEUE = "t", "state-bucket", "q"


class Aws:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def create_resources(self) -> str:
        """What the stack creates at each start; the queue's URL."""
        create_table(self.client("dynamodb"), TABLE)
        self.client("s3").create_bucket(Bucket=BUCKET)
        return str(self.client("sqs").create_queue(QueueName=QUEUE)["QueueUrl"])

    def restore(self) -> httpx.Response:
        return httpx.post(self.endpoint + RESTORE_PATH, timeout=30)


@contextmanager
def aws(state: Path | None) -> Iterator[Aws]:
    port = free_port()
    args = [sys.executable, "-m", "devstack.aws", "--port", str(port)]
    if state is not None:
        args += ["--state", str(state)]
    server = subprocess.Popen(args, cwd=ROOT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint + "/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        yield Aws(endpoint)
    finally:
        server.send_signal(signal.SIGTERM)  # as the stack stops it (or dies)
        assert server.wait(30) == 0


ITEM = {
    "pk": {"S": "DOC#1"},
    "sk": {"S": "CHUNK#0001"},
    "vector": {"B": b"\x00\x01\xfe\xff"},
    "meta": {"M": {"pages": {"N": "12"}, "tags": {"L": [{"S": "a"}, {"BOOL": True}]}}},
    "names": {"SS": ["x", "y"]},
    "gsi1pk": {"S": "LIST"},
    "gsi1sk": {"S": "0001"},
}


def test_tables_objects_and_queued_messages_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "aws.json"
    with aws(state) as first:
        queue = first.create_resources()
        assert first.restore().json()["items"] == 0  # nothing saved yet; saving is armed
        dynamodb, s3, sqs = first.client("dynamodb"), first.client("s3"), first.client("sqs")
        dynamodb.put_item(TableName=TABLE, Item=ITEM)
        for i in range(300):
            dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": f"U#{i}"}, "sk": {"S": "x"}})
        s3.put_object(
            Bucket=BUCKET, Key="tenant/doc 1.pdf", Body=b"%PDF\xff", ContentType="application/pdf",
            Metadata={"original-name": "doc 1.pdf"},
        )  # fmt: skip
        sqs.send_message(QueueUrl=queue, MessageBody='{"run_id": "run_1"}')
        sqs.send_message(
            QueueUrl=queue, MessageBody='{"run_id": "run_2"}',
            MessageAttributes={"reason": {"DataType": "String", "StringValue": "why"}},
        )  # fmt: skip
        held = sqs.receive_message(QueueUrl=queue, VisibilityTimeout=600)["Messages"]
        assert len(held) == 1  # in flight (a worker of this run holds it) when it stops
    assert state.exists()

    with aws(state) as second:
        queue = second.create_resources()
        restored = second.restore()
        assert restored.status_code == 200
        counts = restored.json()
        assert (counts["items"], counts["objects"], counts["messages"]) == (301, 1, 2)
        assert counts["skipped"] == []
        dynamodb, s3, sqs = second.client("dynamodb"), second.client("s3"), second.client("sqs")
        key = {"pk": ITEM["pk"], "sk": ITEM["sk"]}
        assert dynamodb.get_item(TableName=TABLE, Key=key)["Item"] == ITEM
        assert dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"] == 301
        index = dynamodb.query(
            TableName=TABLE, IndexName="gsi1", KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": "LIST"}},
        )  # fmt: skip
        assert [i["pk"]["S"] for i in index["Items"]] == ["DOC#1"]  # indexed anew
        obj = s3.get_object(Bucket=BUCKET, Key="tenant/doc 1.pdf")
        assert obj["Body"].read() == b"%PDF\xff"
        assert obj["ContentType"] == "application/pdf"
        assert obj["Metadata"] == {"original-name": "doc 1.pdf"}
        got = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )["Messages"]
        assert sorted(m["Body"] for m in got) == ['{"run_id": "run_1"}', '{"run_id": "run_2"}']
        with_reason = next(m for m in got if "run_2" in m["Body"])
        assert with_reason["MessageAttributes"]["reason"]["StringValue"] == "why"
        dynamodb.delete_item(TableName=TABLE, Key=key)  # saved again at this stop

    with aws(state) as third:
        third.create_resources()
        assert third.restore().json()["items"] == 300


def test_a_run_that_never_restored_saves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "aws.json"
    state.write_text(json.dumps({"version": 1, "dynamodb": [], "s3": [], "sqs": []}))
    before = state.read_bytes()
    with aws(state) as failed_start:  # a stack that stopped before restoring
        failed_start.create_resources()
    assert state.read_bytes() == before


@pytest.mark.parametrize("content", ["{not json", '{"version": 99}', "[]"])
def test_an_unreadable_state_is_refused_and_left_alone(tmp_path: Path, content: str) -> None:
    state = tmp_path / "aws.json"
    state.write_text(content)
    with aws(state) as refused:
        refused.create_resources()
        response = refused.restore()
        assert response.status_code == 500
        assert str(state) in response.json()["error"]
    assert state.read_text() == content  # not overwritten with an empty state


def test_without_a_state_file_there_is_no_restore_route(tmp_path: Path) -> None:
    with aws(None) as plain:
        assert plain.restore().status_code != 200
