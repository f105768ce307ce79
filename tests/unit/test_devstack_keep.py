"""What `make dev` keeps between runs: its keys, unless asked for new ones."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from devstack import keep
from devstack.__main__ import parse_args, parse_options, state_line
from devstack.stack import LocalStack, StackConfig


def test_the_same_keys_come_back_until_new_ones_are_asked_for(tmp_path: Path) -> None:
    first, note = keep.keys(tmp_path)
    assert first.api_key.startswith("sb-") and first.admin_key.startswith("sb-admin-")
    assert note.startswith("new")
    again, note = keep.keys(tmp_path)
    assert again == first and note.startswith("kept in")
    renewed, note = keep.keys(tmp_path, new=True)
    assert renewed.api_key != first.api_key and renewed.admin_key != first.admin_key
    assert "as asked" in note
    assert keep.keys(tmp_path)[0] == renewed
    mode = stat.S_IMODE((tmp_path / "keys.json").stat().st_mode)
    assert mode == 0o600  # keys readable by their owner only


def test_a_given_development_key_is_kept_with_the_kept_admin_key(tmp_path: Path) -> None:
    first, _ = keep.keys(tmp_path)
    given = "sb-" + "g" * 40
    chosen, note = keep.keys(tmp_path, api_key=given)
    assert chosen == keep.DevKeys(given, first.admin_key) and "--api-key" in note
    assert keep.keys(tmp_path)[0] == chosen


def test_a_file_that_holds_no_keys_is_replaced(tmp_path: Path) -> None:
    for content in ("{broken", "[]", json.dumps({"api_key": "not-a-key", "admin_key": "x"})):
        (tmp_path / "keys.json").write_text(content)
        chosen, note = keep.keys(tmp_path)
        assert chosen.api_key.startswith("sb-") and note.startswith("new")
        assert json.loads((tmp_path / "keys.json").read_text())["api_key"] == chosen.api_key


def test_the_command_line_reads_nothing_kept() -> None:
    """Tests build stacks from `parse_args`: it must never pick up a developer's keys or
    state."""
    config = parse_args(["--keep-state"])
    assert config.dev_api_key is None and config.admin_key is None
    assert config.state_file is None
    options = parse_options(["--keep-state", "--new-keys"])
    assert options.keep_state and options.new_keys


def test_the_banner_says_where_the_state_is() -> None:
    memory = LocalStack(StackConfig())
    assert state_line(memory).startswith("in memory")
    kept = LocalStack(StackConfig(state_file=Path("/tmp/x/aws.json")))
    kept.restored = {"items": 1234, "objects": 5, "messages": 2, "seconds": 0.042}
    line = state_line(kept)
    assert "restored 1,234 items, 5 objects and 2 queued messages in 0.04 s" in line
    assert "/tmp/x/aws.json" in line
