"""Rules, templates, allowlist and backoff: the pure parts of the coordinator."""

from __future__ import annotations

import random

import pytest

from coordinator.dispatcher import backoff_seconds
from coordinator.rules import (
    CoordinatorSettings,
    host_allowed,
    human_duration,
    parse_duration,
    parse_rule,
    render,
)
from processlens.errors import ConfigError


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("10m", 600), ("2h30m", 9000), ("1d", 86400), ("1w", 604800),
                                          ("250ms", 0.25), (90, 90), ("1d12h", 129600)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "1x", "d1", "1d foo", "fast"])
def test_parse_duration_rejects_with_hint(bad):
    with pytest.raises(ConfigError) as err:
        parse_duration(bad, {"rule": "r"})
    assert "duration" in err.value.message and err.value.hint


def test_human_duration():
    assert human_duration(9 * 86400 + 3 * 3600 + 59) == "9d 3h"
    assert human_duration(42) == "42s"
    assert human_duration(None) == "n/a"


@pytest.mark.parametrize("url,allowed", [
    ("http://127.0.0.1:8080/x", True),
    ("https://hooks.example.com/a", True),
    ("https://evil.example.org/a", False),
    ("https://example.com.evil.org/a", False),
    ("http://internal:9000/a", True),
    ("http://internal:9001/a", False),
    ("http://127.0.0.2/a", False),
    ("http://user@127.0.0.1.nip.io/a", False),
])
def test_allowlist(url, allowed):
    assert host_allowed(url, ["127.0.0.1", "*.example.com", "internal:9000"]) is allowed


def test_url_templates_cannot_change_the_host():
    url = render("http://127.0.0.1:9/cases/{case_id}", {"case_id": "x@evil.org/../../"}, url=True)
    assert url.startswith("http://127.0.0.1:9/cases/") and "/" not in url[len("http://127.0.0.1:9/cases/"):]
    assert host_allowed(url, ["127.0.0.1"])


def test_unknown_template_field_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        render("{case_idd}", {"case_id": "1"})
    assert "case_idd" in err.value.message and "case_id" in err.value.hint


def _rule(**kw):
    raw = {"when": "stuck", "do": "webhook", "target": {"url": "http://127.0.0.1/x"}, **kw}
    return parse_rule("r1", raw, "p.toml")


def test_rule_defaults_and_guardrails():
    r = _rule(cooldown="12h", max_per_run=3, max_per_hour=10, mode="approval", steps=["Approve Order"])
    assert (r.cooldown_seconds, r.max_per_run, r.max_per_hour, r.mode, r.steps) == (43200, 3, 10, "approval", ["Approve Order"])
    assert _rule().cooldown_seconds == 86400 and _rule().disable_after == 5


@pytest.mark.parametrize("kw,field", [
    ({"when": "sometimes"}, "when"), ({"do": "pray"}, "do"), ({"mode": "yolo"}, "mode"),
    ({"max_per_run": 0}, "max_per_run"), ({"cooldown": "soon"}, "cooldown"), ({"colour": "red"}, None),
    ({"target": {}}, "target.url"), ({"text": "{nope}"}, "text"),
])
def test_rule_errors_name_rule_and_field(kw, field):
    with pytest.raises(ConfigError) as err:
        _rule(**kw)
    assert err.value.where.get("rule") == "r1"
    if field:
        assert err.value.where.get("field") == field


def test_rule_problems_report_missing_env_and_foreign_hosts(monkeypatch):
    cs = CoordinatorSettings(allowlist=["127.0.0.1"])
    monkeypatch.delenv("PL_TEST_HOOK", raising=False)
    r = parse_rule("r2", {"when": "stuck", "do": "webhook", "target": {"url_env": "PL_TEST_HOOK"}})
    assert "PL_TEST_HOOK" in r.problems(cs)[0]
    monkeypatch.setenv("PL_TEST_HOOK", "https://elsewhere.org/hook")
    assert "allowlist" in r.problems(cs)[0]
    monkeypatch.setenv("PL_TEST_HOOK", "http://127.0.0.1:5000/hook")
    assert r.problems(cs) == []


def test_coordinator_settings_reject_unknown_keys(tmp_path):
    from processlens.config import load_settings

    (tmp_path / "p.toml").write_text('[coordinator]\nallowlist = ["a"]\nbackof_base = "1s"\n')
    with pytest.raises(ConfigError) as err:
        CoordinatorSettings.from_settings(load_settings(config=tmp_path / "p.toml"))
    assert "backof_base" in err.value.message


def test_backoff_grows_exponentially_with_jitter_and_cap():
    cs = CoordinatorSettings(backoff_base=1.0, backoff_max=30.0)
    rng = random.Random(7)
    for attempt in range(1, 10):
        full = min(30.0, 2 ** (attempt - 1))
        values = [backoff_seconds(attempt, cs, rng=rng) for _ in range(200)]
        assert all(full / 2 <= v <= full for v in values)
        assert len(set(values)) > 100  # jittered, not fixed
    assert backoff_seconds(1, cs, retry_after=20, rng=rng) >= 20  # Retry-After is honoured (capped)
    assert backoff_seconds(1, cs, retry_after=999, rng=rng) <= 30
