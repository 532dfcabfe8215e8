"""Settings: defaults from the external contract, and the one secret scrubber."""
from __future__ import annotations

from pydantic import SecretStr

from bot.config import REDACTED, load_settings, scrub, secret_value


def test_max_tokens_defaults_to_4096(monkeypatch):
    monkeypatch.delenv("THREADBOT_MAX_TOKENS", raising=False)
    assert load_settings(_env_file=None).max_tokens == 4096


def test_secret_value_reads_secrets_and_plain_strings():
    assert secret_value(SecretStr(" xoxb-1 ")) == "xoxb-1"
    assert secret_value("http://localhost:11434/v1") == "http://localhost:11434/v1"
    assert secret_value(None) == ""


def test_scrub_removes_the_given_secret_and_anything_shaped_like_a_key():
    text = "bad key my-own-secret-42, also sk-ant-api03-abcdefgh and xoxb-1234-5678-abcdef; ok sk-x"
    scrubbed = scrub(text, "my-own-secret-42", None, "")
    assert "my-own-secret-42" not in scrubbed and "abcdefgh" not in scrubbed and "5678" not in scrubbed
    assert scrubbed == f"bad key {REDACTED}, also sk-{REDACTED} and xoxb-{REDACTED}; ok sk-x"
