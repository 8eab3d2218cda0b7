"""Bounded polling and the eventual-consistency retry, with an injected clock: no real waiting."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from awslab.engine.waiting import Clock, Interrupted, poll_until, retry_eventual
from awslab.errors import WaitTimeout


class FakeClock(Clock):
    def __init__(self):
        self.t = 0.0
        self.sleeps: list[float] = []
        super().__init__(now=lambda: self.t, sleep=self._sleep)

    def _sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def _states(*seq):
    it = iter(seq)
    last = [None]

    def probe():
        last[0] = next(it, last[0])
        return last[0]

    return probe


def test_poll_until__returns_when_done_and_reports_each_new_state():
    clock, seen = FakeClock(), []
    state = poll_until("db x", _states("creating", "creating", "backing-up", "available"), {"available"},
                       timeout_s=600, first_delay_s=5, max_delay_s=30, clock=clock,
                       on_progress=lambda s, e: seen.append(s))
    assert state == "available"
    assert seen == ["creating", "backing-up"]
    assert len(clock.sleeps) == 3 and all(2.5 <= s <= 30 for s in clock.sleeps)


def test_poll_until__delays_grow_with_jitter_and_stay_bounded():
    clock = FakeClock()
    with pytest.raises(WaitTimeout):
        poll_until("x", lambda: "creating", {"available"}, timeout_s=600, first_delay_s=1, max_delay_s=20, clock=clock)
    assert max(clock.sleeps) <= 20
    assert clock.sleeps[-3] > clock.sleeps[0]  # backed off
    assert len(clock.sleeps) < 80               # economical: not a tight loop


def test_poll_until__gives_up_at_the_bound_naming_what_and_the_last_state():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as info:
        poll_until("RDS instance db1", lambda: "modifying", {"available"}, timeout_s=120, first_delay_s=5,
                   max_delay_s=30, clock=clock)
    assert "RDS instance db1" in info.value.message and "last seen: modifying" in info.value.message
    assert 120 <= clock.t <= 121


def test_poll_until__a_failed_state_fails_at_once():
    with pytest.raises(WaitTimeout, match="went to 'failed'"):
        poll_until("db", _states("creating", "failed"), {"available"}, failed={"failed"}, timeout_s=600,
                   first_delay_s=1, max_delay_s=1, clock=FakeClock())


def test_poll_until__cancel_stops_at_the_next_poll():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Interrupted):
        poll_until("db", lambda: "creating", {"available"}, timeout_s=600, first_delay_s=1, max_delay_s=1, cancel=cancel)


def _client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DeleteSecurityGroup")


def test_retry_eventual__retries_the_named_code_then_succeeds():
    calls = []

    @retry_eventual({"DependencyViolation"}, within_s=30)
    def delete():
        calls.append(1)
        if len(calls) < 3:
            raise _client_error("DependencyViolation")
        return "deleted"

    import tenacity

    delete.retry.wait = tenacity.wait_none()
    assert delete() == "deleted" and len(calls) == 3


def test_retry_eventual__other_codes_are_not_retried():
    calls = []

    @retry_eventual({"DependencyViolation"}, within_s=30)
    def delete():
        calls.append(1)
        raise _client_error("UnauthorizedOperation")

    with pytest.raises(ClientError):
        delete()
    assert len(calls) == 1


def test_visible_within__a_new_resource_missing_at_first_is_not_yet_gone():
    from awslab.engine.waiting import GONE, NOT_VISIBLE, visible_within

    clock = FakeClock()
    states = iter([GONE, GONE, "creating", "available"])
    probe = visible_within(lambda: next(states), grace_s=60, clock=clock)
    seen = []
    assert poll_until("db", lambda: seen.append(probe()) or seen[-1], {"available"}, failed={GONE}, timeout_s=600,
                      first_delay_s=1, max_delay_s=5, clock=clock) == "available"
    assert seen[:2] == [NOT_VISIBLE, NOT_VISIBLE]


def test_visible_within__still_missing_after_the_grace_is_gone():
    from awslab.engine.waiting import GONE, visible_within

    clock = FakeClock()
    probe = visible_within(lambda: GONE, grace_s=10, clock=clock)
    with pytest.raises(WaitTimeout, match="went to '<gone>'"):
        poll_until("db", probe, {"available"}, failed={GONE}, timeout_s=600, first_delay_s=2, max_delay_s=5, clock=clock)
    assert 10 <= clock.t <= 16


def test_local_clients__back_off_20x_less_after_a_throttle_aws_clients_as_botocore_does():
    """The local AWS has no rate limit (only injected faults throttle it): its clients wait 50 ms x 2^n
    after a throttle, where AWS's wait botocore's 1 s x 2^n; which errors are retried, and how often,
    stay botocore's."""
    from botocore.retries.standard import RetryContext

    from awslab.engine.context import LOCAL_BACKOFF_SCALE, Context

    def backoff(ctx: Context):
        client = ctx.client("ec2")
        sid = client.meta.service_model.service_id.hyphenize()
        handler = client.meta.events._emitter._unique_id_handlers[f"retry-config-{sid}"]["handler"].__self__
        return handler._retry_policy._retry_backoff

    local = backoff(Context(target="aws", region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    real = backoff(Context(target="aws", region="us-east-1"))
    throttled = RetryContext(attempt_number=3, parsed_response={"Error": {"Code": "RequestLimitExceeded"}})
    local._random = real._random = lambda: 1.0
    assert local.delay_amount(throttled) == LOCAL_BACKOFF_SCALE["throttling_base_scale"] * 4 == 0.2
    assert real.delay_amount(throttled) == 4.0


def test_local_contexts__share_their_clients_without_making_a_session_and_other_keys_get_their_own(monkeypatch):
    """Each command run in one process (the tests, a class) has a context of its own: on the local
    AWS the second context's client is the first's, found by the home's keys alone (no boto3
    session made for it); a home with other keys gets a client of its own, signing with them."""
    from awslab.engine import context as c

    class Home:
        def __init__(self, key: str) -> None:
            self.keys = {"aws_access_key_id": key, "aws_secret_access_key": f"secret-of-{key}"}

        def credentials(self) -> dict[str, str]:
            return dict(self.keys)

        def saved_credentials(self) -> dict[str, str]:
            return dict(self.keys)

    def local(home: Home) -> c.Context:
        return c.Context(target="local", region="us-east-1", endpoint_url="http://127.0.0.1:9", local=home)

    first = local(Home("AKIAONE")).client("rds")
    made = []
    session = c.Context.session
    monkeypatch.setattr(c.Context, "session", lambda self: made.append(self) or session(self))
    assert local(Home("AKIAONE")).client("rds") is first
    assert made == []
    other = local(Home("AKIATWO")).client("rds")
    assert other is not first and len(made) == 1
    assert other._request_signer._credentials.access_key == "AKIATWO"
    assert first._request_signer._credentials.access_key == "AKIAONE"
