"""The one model-API retry policy: Retry-After in every form the providers send, capped waits, the total budget."""
from __future__ import annotations

import email.utils
import time

import pytest

from bot.errors import ModelOverloaded, ModelRateLimited, ModelRejected, ModelUnavailable, PromptTooLong
from bot.llm.retry import RetryPolicy, is_retryable, parse_retry_after


def test_retry_after_in_seconds_milliseconds_and_http_dates():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "0.6"}) == 0.6
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25  # the finer one wins
    in_twenty = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 17 <= parse_retry_after({"retry-after": in_twenty}) <= 20
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0


@pytest.mark.parametrize("headers", [{}, None, {"retry-after": "soon"}, {"retry-after": "-3"},
                                     {"retry-after": "nan"}, {"retry-after-ms": "x"}])
def test_unreadable_retry_after_is_no_hint(headers):
    assert parse_retry_after(headers) is None


def test_bad_milliseconds_fall_back_to_seconds():
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "2"}) == 2.0


def test_waits_grow_and_stay_under_the_cap():
    policy = RetryPolicy(max_wait_s=8.0)
    firsts = [policy.wait_s(1, None) for _ in range(50)]
    assert all(0.375 <= w <= 0.5 for w in firsts)
    assert all(1.5 <= policy.wait_s(3, None) <= 2.0 for _ in range(50))
    assert policy.wait_s(10, None) == 8.0
    assert policy.wait_s(1, 3600) == 8.0  # an hour's Retry-After is capped
    assert policy.wait_s(1, 3.0) == 3.0  # a short one is honoured


def test_transient_errors_are_retried_and_the_rest_are_not():
    assert is_retryable(ModelOverloaded(status_code=529))
    assert is_retryable(ModelRateLimited(status_code=429))
    assert is_retryable(ModelUnavailable())  # connection failures carry no status
    assert is_retryable(ModelUnavailable(status_code=503))
    assert not is_retryable(ModelUnavailable(status_code=501))  # not implemented stays so
    assert not is_retryable(ModelRejected(status_code=400))
    assert not is_retryable(PromptTooLong(status_code=413))


def test_attempts_give_up_after_max_retries_after_output_and_past_the_budget():
    attempts = RetryPolicy(max_retries=2, max_wait_s=0.01).start()
    assert attempts.wait_before_retry(ModelOverloaded(), streamed=False, retry_after=None) is not None
    assert attempts.wait_before_retry(ModelOverloaded(), streamed=False, retry_after=None) is not None
    assert attempts.wait_before_retry(ModelOverloaded(), streamed=False, retry_after=None) is None
    assert attempts.failures == 3

    fresh = RetryPolicy().start()
    assert fresh.wait_before_retry(ModelOverloaded(), streamed=True, retry_after=None) is None

    tight = RetryPolicy(max_wait_s=8.0, budget_s=5.0).start()
    assert tight.wait_before_retry(ModelRateLimited(), streamed=False, retry_after=6.0) is None
    assert RetryPolicy(budget_s=5.0).start().wait_before_retry(ModelRateLimited(), streamed=False,
                                                                retry_after=4.0) == 4.0
