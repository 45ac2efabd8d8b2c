"""Rules edited in the dashboard: validated like the file, saved beside it, overriding by name."""

from __future__ import annotations

import pytest

from coordinator import load_rules
from coordinator.rule_edit import rule_table, save_rule
from processlens.config import EDITS_FILE, load_settings
from processlens.errors import ConfigError

CONFIG = """
# hand-written, with a comment that must survive edits
[coordinator]
allowlist = ["127.0.0.1"]

[rules.escalate_stuck]
when = "stuck"
do = "webhook"
mode = "automatic"
cooldown = "1d"
[rules.escalate_stuck.target]
url = "http://127.0.0.1:9/hook"
"""


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "processlens.toml").write_text(CONFIG)
    return load_settings(db=tmp_path / "s.duckdb", config=tmp_path / "processlens.toml")


def test_an_edited_rule_overrides_the_file_and_survives_a_reload(settings):
    table = rule_table(settings, "escalate_stuck")
    table["cooldown"] = "2d"
    table["max_per_hour"] = 7
    save_rule(settings, "escalate_stuck", table)
    assert (settings.config_path.parent / EDITS_FILE).exists()
    assert "hand-written" in settings.config_path.read_text()  # the user's file is untouched
    reloaded = load_settings(db=settings.db_path, config=settings.config_path)
    (rule,) = load_rules(reloaded)
    assert rule.name == "escalate_stuck" and reloaded.section("rules")["escalate_stuck"]["cooldown"] == "2d"
    assert reloaded.section("rules")["escalate_stuck"]["max_per_hour"] == 7


def test_a_new_rule_is_added(settings):
    save_rule(settings, "notify_exceptions", {"when": "unhandled_exception", "do": "webhook", "mode": "approval",
                                              "target": {"url": "http://127.0.0.1:9/x"}})
    names = [r.name for r in load_rules(load_settings(db=settings.db_path, config=settings.config_path))]
    assert names == ["escalate_stuck", "notify_exceptions"]


def test_an_invalid_rule_is_refused_and_nothing_is_saved(settings):
    with pytest.raises(ConfigError) as err:
        save_rule(settings, "broken", {"when": "stuck", "do": "webhook", "mode": "sometimes",
                                       "target": {"url": "http://127.0.0.1:9/x"}})
    assert "mode" in str(err.value)
    assert not (settings.config_path.parent / EDITS_FILE).exists()
    with pytest.raises(ConfigError):
        save_rule(settings, "bad name!", {"when": "stuck"})
