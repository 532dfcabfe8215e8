"""manifest.yml validates against Slack's published schema and matches what the bot handles."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT.parent / "shared" / "reference" / "slack-manifest-schema"
VENDORED_SCHEMA = Path(__file__).parents[1] / "data" / "manifest.schema.1.0.0.json"


def load_schema() -> dict:
    # CI has ../shared beside the checkout; a vendored copy keeps the test runnable anywhere.
    path = SCHEMA_DIR / "manifest.schema.1.0.0.json"
    return json.loads((path if path.exists() else VENDORED_SCHEMA).read_text())


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slack_schema():
    jsonschema.validate(manifest(), load_schema())


def test_schema_rejects_a_broken_manifest():
    broken = manifest()
    broken["settings"]["event_subscriptions"]["bot_events"] = "app_mention"  # must be a list
    try:
        jsonschema.validate(broken, load_schema())
    except jsonschema.ValidationError:
        return
    raise AssertionError("schema accepted an invalid manifest")


def test_manifest_socket_mode_and_events_match_listeners():
    m = manifest()
    assert m["settings"]["socket_mode_enabled"] is True
    events = set(m["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im"} <= events
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    # Exactly what the bot uses: no scope an admin would have to wonder about.
    assert scopes == {"app_mentions:read", "assistant:write", "chat:write", "commands", "files:read", "im:history",
                      "channels:history", "groups:history", "mpim:history", "users:read",
                      "channels:read", "groups:read", "mpim:read"}
    assert {"message.channels", "message.groups", "message.mpim"} <= events
    assert {c["command"] for c in m["features"]["slash_commands"]} == {"/usage", "/knowledge", "/threadbot"}
    assert [(s["type"], s["callback_id"]) for s in m["features"]["shortcuts"]] == [("message", "summarize_thread")]


def test_manifest_has_the_assistant_surface_and_feedback_interactivity():
    m = manifest()
    view = m["features"]["assistant_view"]
    assert view["assistant_description"] and 1 <= len(view["suggested_prompts"]) <= 4
    assert "assistant:write" in m["oauth_config"]["scopes"]["bot"]
    events = set(m["settings"]["event_subscriptions"]["bot_events"])
    assert {"assistant_thread_started", "assistant_thread_context_changed"} <= events
    assert m["settings"]["interactivity"]["is_enabled"] is True  # the 👍/👎 buttons
    # That every subscribed event is acked by a listener is checked against the running app in
    # tests/slack/test_assistant.py::test_every_manifest_event_is_acked.


def test_manifest_has_the_home_tab_and_its_event():
    m = manifest()
    assert m["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in m["settings"]["event_subscriptions"]["bot_events"]
