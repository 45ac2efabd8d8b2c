"""Delivery against real servers on 127.0.0.1: signatures, idempotency, retries, dead letters,
allowlist, approval, auto-disable, guardrails of event rules, e-mail, and the timeline events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from receiver import Receiver, make_store, write_config

from coordinator import (
    approve,
    enqueue_manual,
    evaluate,
    list_actions,
    rule_states,
    run_once,
)
from coordinator.dispatcher import Dispatcher
from coordinator.manual import retry, set_rule_enabled
from ingest.api import ingest_file
from ingest.store import open_store
from processlens.errors import ActionError

SECRET = "test-secret-äö"
FAST = """
[coordinator]
allowlist = ["127.0.0.1"]
backoff_base = "20ms"
backoff_max = "100ms"
max_attempts = 6
lease = "5s"
"""


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("PROCESSLENS_WEBHOOK_SECRET", SECRET)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def tiny(tmp_path, db_path):
    make_store(db_path, tmp_path)
    return db_path


def hook_rule(url: str, name: str = "hook", extra: str = "", when: str = "event", types: str = '["Approve Order"]') -> str:
    return f"""
[rules.{name}]
when = "{when}"
types = {types}
do = "webhook"
{extra}
[rules.{name}.target]
url = "{url}"
"""


def settings_for(tmp_path, db, body):
    return write_config(tmp_path / "processlens.toml", db, body)


def drain_until(settings, predicate, timeout=20.0):
    d = Dispatcher.from_settings(settings)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d.drain()
            if predicate():
                return True
            time.sleep(0.03)
        return False
    finally:
        d.close()


def actions_df(db):
    with open_store(db, read_only=True) as con:
        return list_actions(con)


def test_manual_action_is_delivered_once_signed_and_becomes_a_case_event(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook/{case_id}"))
    with open_store(tiny) as con:
        ids = enqueue_manual(con, ["c1", "c3"], "webhook", "alice", s)
    result = run_once(s)
    assert result.dispatch.delivered == 2
    got = receiver.succeeded()
    assert sorted(r.path for r in got) == ["/hook/c1", "/hook/c3"]
    for r in got:
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["x-processlens-signature"] == expected
        assert r.json["case_id"] in ("c1", "c3") and r.json["kind"] == "manual"
        assert r.key and r.json["idempotency_key"] == r.key
    assert run_once(s).dispatch.delivered == 0  # nothing is sent twice
    assert len(receiver.requests) == 2
    with open_store(tiny, read_only=True) as con:
        ev = con.execute("SELECT case_id, activity, resource FROM event_log WHERE source = 'processlens' "
                         "ORDER BY case_id").fetchall()
        aud = con.execute("SELECT event, actor, payload_sha256 FROM action_audit WHERE action_id = ? ORDER BY audit_at",
                          [ids[0]]).fetchall()
        payload = con.execute("SELECT payload FROM actions WHERE action_id = ?", [ids[0]]).fetchone()[0]
    assert ev == [("c1", "Action: webhook", "alice"), ("c3", "Action: webhook", "alice")]
    assert [a[0] for a in aud] == ["created", "delivered"] and aud[0][1] == "alice"
    assert aud[0][2] == hashlib.sha256(payload.encode()).hexdigest()


def test_receiver_fails_three_times_then_recovers_delivered_once(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook"))
    receiver.fail_next = 3
    with open_store(tiny) as con:
        (aid,) = enqueue_manual(con, ["c1"], "webhook", "ops", s)
    assert drain_until(s, lambda: actions_df(tiny).iloc[0]["status"] == "delivered")
    assert len(receiver.requests) == 4
    assert len({r.key for r in receiver.requests}) == 1  # every attempt carries the same key
    assert len(receiver.succeeded()) == 1
    with open_store(tiny, read_only=True) as con:
        att = con.execute("SELECT attempt, outcome, status_code FROM action_attempts WHERE action_id = ? ORDER BY attempt",
                          [aid]).fetchall()
        starts = [r[0] for r in con.execute("SELECT started_at FROM action_attempts ORDER BY attempt").fetchall()]
    assert att == [(1, "failed", 500), (2, "failed", 500), (3, "failed", 500), (4, "delivered", 200)]
    assert all(b > a for a, b in zip(starts, starts[1:], strict=False))


def test_dead_letter_after_max_attempts_then_operator_retry(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST.replace("max_attempts = 6", "max_attempts = 3")
                     + hook_rule(receiver.url + "/hook", extra="disable_after = 50"))
    receiver.fail_next = 100
    with open_store(tiny) as con:
        (aid,) = enqueue_manual(con, ["c2"], "webhook", "ops", s)
    assert drain_until(s, lambda: actions_df(tiny).iloc[0]["status"] == "dead")
    a = actions_df(tiny).iloc[0]
    assert a["attempts"] == 3 and "HTTP 500" in a["last_error"]
    assert len(receiver.requests) == 3
    receiver.fail_next = 0
    with open_store(tiny) as con:
        assert retry(con, aid, "operator", s)["status"] == "pending"
    run_once(s, evaluate_first=False)
    assert actions_df(tiny).iloc[0]["status"] == "delivered"
    assert len(receiver.succeeded()) == 1
    with open_store(tiny) as con:
        with pytest.raises(ActionError):
            retry(con, aid, "operator", s)  # delivered actions are done


def test_client_errors_are_not_retried(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook"))
    receiver.status = 422
    with open_store(tiny) as con:
        enqueue_manual(con, ["c2"], "webhook", "ops", s)
    run_once(s, evaluate_first=False)
    a = actions_df(tiny).iloc[0]
    assert a["status"] == "dead" and a["attempts"] == 1 and len(receiver.requests) == 1


def test_target_outside_the_allowlist_is_refused(tmp_path, tiny, receiver):
    foreign = receiver.url.replace("127.0.0.1", "localhost")  # same server, but not an allowlisted host name
    s = settings_for(tmp_path, tiny, FAST + hook_rule(foreign + "/hook"))
    with open_store(tiny) as con:
        enqueue_manual(con, ["c1"], "webhook", "ops", s)
    run_once(s)
    a = actions_df(tiny).iloc[0]
    assert a["status"] == "refused" and "allowlist" in a["last_error"]
    assert receiver.requests == []


def test_allowlist_is_checked_again_when_sending(tmp_path, tiny, receiver, monkeypatch):
    monkeypatch.setenv("PL_HOOK", receiver.url + "/hook")
    body = FAST + """
[rules.hook]
when = "event"
do = "webhook"
[rules.hook.target]
url_env = "PL_HOOK"
"""
    s = settings_for(tmp_path, tiny, body)
    with open_store(tiny) as con:
        enqueue_manual(con, ["c1"], "webhook", "ops", s)
    monkeypatch.setenv("PL_HOOK", receiver.url.replace("127.0.0.1", "localhost") + "/hook")  # env changed afterwards
    run_once(s, evaluate_first=False)
    a = actions_df(tiny).iloc[0]
    assert a["status"] == "refused" and receiver.requests == []
    assert "localhost" not in json.dumps(json.loads(a["target"]))  # env URLs are not stored


def test_missing_secret_is_a_clear_error_and_nothing_is_sent(tmp_path, tiny, receiver, monkeypatch):
    monkeypatch.delenv("PROCESSLENS_WEBHOOK_SECRET")
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook"))
    with open_store(tiny) as con:
        enqueue_manual(con, ["c1"], "webhook", "ops", s)
    run_once(s, evaluate_first=False)
    a = actions_df(tiny).iloc[0]
    assert a["status"] == "dead" and "PROCESSLENS_WEBHOOK_SECRET" in a["last_error"]
    assert receiver.requests == []


def _add_events(tmp_path, db, rows: str, name: str):
    path = tmp_path / name
    path.write_text("case,activity,timestamp,resource\n" + rows)
    with open_store(db) as con:
        ingest_file(con, path, case="case", activity="activity", timestamp="timestamp", resource="resource",
                    source="ERP", progress=False)


def test_event_rule_fires_for_new_events_with_rate_limits_and_cooldown(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook", extra="max_per_run = 2\nmax_per_hour = 3"))
    with open_store(tiny) as con:
        first = evaluate(con, s)  # first look only sets the watermark: history does not fire
    assert first.created == 0
    _add_events(tmp_path, tiny, "".join(f"n{i},Approve Order,2026-01-02 0{i}:00:00,x\n" for i in range(5))
                + "c1,Pick Goods,2026-01-02 09:00:00,x\n", "new1.csv")
    with open_store(tiny) as con:
        ev = evaluate(con, s)
    r = ev.rules[0]
    assert (r.matched, r.created, r.rate_limited) == (5, 2, 3)  # max_per_run
    with open_store(tiny) as con:
        second = evaluate(con, s).rules[0]
    assert second.matched == 0  # the watermark moved: the same events do not match again
    _add_events(tmp_path, tiny, "n0,Approve Order,2026-01-03 01:00:00,x\nn9,Approve Order,2026-01-03 02:00:00,x\n"
                "n8,Approve Order,2026-01-03 03:00:00,x\n", "new2.csv")
    with open_store(tiny) as con:
        third = evaluate(con, s).rules[0]
    assert third.cooldown == 1  # n0 was acted on within the cool-down
    assert third.created == 1 and third.rate_limited == 1  # max_per_hour = 3 in total
    run_once(s, evaluate_first=False)
    cases = sorted(json.loads(r.body)["case_id"] for r in receiver.succeeded())
    assert len(cases) == 3 and len(set(cases)) == 3
    assert all(json.loads(r.body)["kind"] == "event" for r in receiver.succeeded())


def test_dry_run_writes_nothing_and_sends_nothing(tmp_path, tiny, receiver):
    from coordinator import dry_run

    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook", extra='mode = "dry_run"'))
    with open_store(tiny) as con:
        evaluate(con, s)
    _add_events(tmp_path, tiny, "d1,Approve Order,2026-01-02 01:00:00,x\nd2,Approve Order,2026-01-02 02:00:00,x\n", "d.csv")
    with open_store(tiny) as con:
        preview = dry_run(con, s, "hook")
        assert sorted(preview.case_ids) == ["d1", "d2"]
        ev = evaluate(con, s).rules[0]
        assert ev.case_ids == ["d1", "d2"] and ev.created == 0
    run_once(s)
    assert actions_df(tiny).empty and receiver.requests == []


def test_approval_required_holds_actions_until_approved(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook", extra='mode = "approval"'))
    with open_store(tiny) as con:
        evaluate(con, s)
    _add_events(tmp_path, tiny, "a1,Approve Order,2026-01-02 01:00:00,x\na2,Approve Order,2026-01-02 02:00:00,x\n", "a.csv")
    run_once(s)
    df = actions_df(tiny)
    assert set(df["status"]) == {"awaiting_approval"} and receiver.requests == []
    ids = sorted(df["action_id"])
    with open_store(tiny) as con:
        assert approve(con, [ids[0]], "lead") == 1
        assert approve(con, [ids[1]], "lead", approved=False) == 1
    run_once(s)
    df = actions_df(tiny).set_index("action_id")
    assert df.loc[ids[0], "status"] == "delivered" and df.loc[ids[1], "status"] == "rejected"
    assert df.loc[ids[0], "approved_by"] == "lead"
    assert len(receiver.succeeded()) == 1


def test_rule_disables_itself_after_consecutive_failures(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook", extra="disable_after = 3"))
    receiver.fail_next = 1000
    with open_store(tiny) as con:
        evaluate(con, s)
    _add_events(tmp_path, tiny, "".join(f"f{i},Approve Order,2026-01-02 0{i}:00:00,x\n" for i in range(4)), "f.csv")
    with open_store(tiny) as con:
        assert evaluate(con, s).created == 4
    d = Dispatcher.from_settings(s)
    for _ in range(3):
        d.drain()
        time.sleep(0.12)
    d.close()
    with open_store(tiny, read_only=True) as con:
        st = rule_states(con)["hook"]
        attempts = con.execute("SELECT count(*) FROM action_attempts").fetchone()[0]
    assert st["enabled"] is False and "3 consecutive failed deliveries" in st["disabled_reason"]
    assert "HTTP 500" in st["disabled_reason"]
    n = len(receiver.requests)
    assert n == attempts >= 3
    run_once(s)  # disabled: nothing more is sent or created
    assert len(receiver.requests) == n
    receiver.fail_next = 0
    with open_store(tiny) as con:
        set_rule_enabled(con, "hook", True, "admin")
    assert drain_until(s, lambda: set(actions_df(tiny)["status"]) == {"delivered"})
    assert len(set(receiver.keys())) == 4


def test_email_arrives_at_smtp_server(tmp_path, tiny):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    got = []

    class Collect(Message):
        def handle_message(self, message):
            got.append(message)

    from conftest import free_port

    port = free_port()
    ctl = Controller(Collect(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        s = settings_for(tmp_path, tiny, f"""
[coordinator]
allowlist = ["127.0.0.1"]
[coordinator.smtp]
host = "127.0.0.1"
port = {port}
from = "processlens@example.com"
[coordinator.contacts.Finance]
email = "finance-lead@example.com"
[rules.mail]
when = "event"
do = "email"
text = "Case {{case_id}} needs {{owner}}: {{link}}"
[rules.mail.target]
to = ["ops@example.com", "{{contact_email}}"]
""")
        with open_store(tiny) as con:
            enqueue_manual(con, ["c3"], "email", "alice", s)
        assert run_once(s).dispatch.delivered == 1
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        ctl.stop()
    assert len(got) == 1
    msg = got[0]
    assert "ops@example.com" in msg["To"] and "c3" in msg["Subject"]
    assert "case_id=c3" in msg.get_payload()
    key = actions_df(tiny).iloc[0]["idempotency_key"]
    assert msg["Idempotency-Key"] == key and key in msg["Message-ID"]


def test_chat_payload_is_slack_compatible(tmp_path, tiny, receiver):
    s = settings_for(tmp_path, tiny, FAST + f"""
[rules.chat]
when = "event"
do = "chat"
[rules.chat.target]
url = "{receiver.url}/services/T000/B000/XXXX"
""")
    with open_store(tiny) as con:
        enqueue_manual(con, ["c1"], "chat", "alice", s, text="Case {case_id} waits at {step}")
    run_once(s)
    body = receiver.succeeded()[0].json
    assert body["text"] == "Case c1 waits at Check Credit"
    assert body["blocks"][0]["type"] == "section" and body["blocks"][0]["text"]["type"] == "mrkdwn"
    # the secret path of a chat webhook never appears in errors or the audit
    receiver.status = 500
    with open_store(tiny) as con:
        enqueue_manual(con, ["c2"], "chat", "alice", s)
    run_once(s, evaluate_first=False)
    with open_store(tiny, read_only=True) as con:
        texts = " ".join(str(x) for row in con.execute("SELECT * FROM action_audit").fetchall() for x in row)
        texts += " ".join(str(x) for row in con.execute("SELECT * FROM action_attempts").fetchall() for x in row)
    assert "XXXX" not in texts and SECRET not in texts


def test_manual_dispatch_refuses_unknown_cases(tmp_path, tiny, receiver):
    from coordinator import preview

    s = settings_for(tmp_path, tiny, FAST + hook_rule(receiver.url + "/hook"))
    with open_store(tiny) as con:
        p = preview(con, ["c1", "c2", "zz"], "webhook", s)
        assert p["cases"] == 2 and p["unknown"] == ["zz"]
        with pytest.raises(ActionError) as err:
            enqueue_manual(con, ["c1", "zz"], "webhook", "alice", s)
        assert "zz" in err.value.message
        assert list_actions(con).empty
