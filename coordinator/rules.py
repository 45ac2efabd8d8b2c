"""Rules and coordinator settings, read from ``[rules.NAME]`` and ``[coordinator]`` in processlens.toml.

A rule says **when** it fires (a case is stuck, an exception is unhandled, a deviation occurred, an
event arrived), **which cases** (an analytics filter), what to **do** (an action type with a
templated payload and a target) and its **guardrails** (mode, rate limits, cool-down, auto-disable).

```toml
[rules.escalate_stuck]
when = "stuck"                       # stuck | unhandled_exception | deviation | event
steps = ["Approve Order"]            # optional: only these steps (or exception/deviation types, activities)
# kinds = ["exception event"]        # unhandled_exception: which kinds count (also "not final")
cases = { sources = ["ERP"] }        # optional analytics filter (analytics.Filter.from_dict)
do = "escalate"                      # escalate | reassign | retry | email | chat | ticket | webhook
mode = "automatic"                   # automatic | approval | dry_run
max_per_run = 50
max_per_hour = 200
cooldown = "1d"                      # never act on the same case twice within this time
disable_after = 5                    # consecutive failed attempts before the rule disables itself
text = "Case {case_id} waits {waited} at {step} ({owner}): {link}"
[rules.escalate_stuck.target]
url_env = "PROCESSLENS_DEMO_WEBHOOK" # or url = "https://hooks.example.com/x/{owner}"
```
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from processlens.errors import ActionError, ConfigError

WHEN = ("stuck", "unhandled_exception", "deviation", "event")
ACTIONS = ("escalate", "reassign", "retry", "email", "chat", "ticket", "webhook")
MODES = ("automatic", "approval", "dry_run")
TEMPLATE_FIELDS = (
    "case_id", "step", "owner", "contact", "contact_email", "waited", "waited_seconds", "sla", "sla_seconds",
    "normal_seconds", "reasons", "type", "kind", "rule", "action", "link", "now", "source", "last_activity",
)
DEFAULT_TEXT = {
    "stuck": "Case {case_id} has waited {waited} at {step} (owner {owner}; SLA {sla}). {link}",
    "unhandled_exception": "Case {case_id}: exception {type} is unhandled (owner {owner}). {link}",
    "deviation": "Case {case_id} deviates from the model: {type}. {link}",
    "event": "Case {case_id}: {type} happened. {link}",
    "manual": "Case {case_id}: action {action} requested by {rule}. {link}",
}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def parse_duration(value: Any, where: dict[str, Any] | None = None) -> float:
    """Seconds from ``"1d"``, ``"2h30m"``, ``"90s"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ConfigError(f"{value!r} is not a duration", hint='write e.g. "30s", "10m", "2h", "1d" or "1d12h"',
                          where=where or {})
    return total


def human_duration(seconds: float | None) -> str:
    """``9d 3h``, ``5h 12m``, ``42s``: two units at most."""
    if seconds is None or seconds != seconds:
        return "n/a"
    s = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size or (unit == "s" and not parts):
            parts.append(f"{s // size}{unit}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def host_allowed(url_or_host: str, allowlist: list[str]) -> bool:
    """Is the host (and port) of a URL in the allowlist? Entries: ``host``, ``host:port``, ``*.domain``."""
    if "://" in url_or_host:
        parts = urlsplit(url_or_host)
        host, port = (parts.hostname or "").lower(), parts.port
    else:
        host, _, p = url_or_host.rpartition(":") if url_or_host.count(":") == 1 else (url_or_host, "", "")
        host, port = host.lower().strip("[]"), int(p) if p.isdigit() else None
    if not host:
        return False
    for entry in allowlist:
        entry = entry.strip().lower()
        e_host, e_port = entry, None
        if entry.count(":") == 1:
            e_host, e_port_s = entry.split(":")
            e_port = int(e_port_s)
        if e_port is not None and e_port != port:
            continue
        if e_host.startswith("*."):
            if host.endswith(e_host[1:]):
                return True
        elif host == e_host.strip("[]"):
            return True
    return False


class _Values(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def render(template: str, values: dict[str, Any], *, url: bool = False, where: dict[str, Any] | None = None) -> str:
    """Fill ``{field}`` placeholders; in URLs every value is percent-encoded so data cannot change the host."""
    vals = {k: ("" if v is None else (quote(str(v), safe="") if url else v)) for k, v in values.items()}
    try:
        return string.Formatter().vformat(template, (), _Values(vals))
    except KeyError as exc:
        raise ConfigError(f"template {template!r} uses unknown field {{{exc.args[0]}}}",
                          hint=f"available fields: {', '.join(TEMPLATE_FIELDS)}", where=where or {}) from None
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"template {template!r} is malformed: {exc}", hint="use {field} placeholders; write {{ for a brace",
                          where=where or {}) from None


@dataclass
class Target:
    """Where an action goes. ``channel`` http (url) or smtp (to)."""

    channel: str = "http"
    url: str | None = None
    url_env: str | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    sign: bool = True
    secret_env: str | None = None
    to: list[str] = field(default_factory=list)
    subject: str | None = None

    def resolved_url(self) -> str | None:
        """The URL template with ``url_env`` / ``${VAR}`` resolved from the environment."""
        if self.url_env:
            return os.environ.get(self.url_env) or None
        if self.url and "${" in self.url:
            value = os.path.expandvars(self.url)
            return None if "${" in value else value
        return self.url


@dataclass
class CoordinatorSettings:
    """The ``[coordinator]`` table: delivery policy, allowlist, contacts, systems."""

    allowlist: list[str] = field(default_factory=list)
    dashboard_url: str = "http://localhost:8501"
    secret_env: str = "PROCESSLENS_WEBHOOK_SECRET"
    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 900.0
    lease_seconds: float = 30.0
    batch_size: int = 50
    concurrency: int = 8
    timeout: float = 10.0
    interval: float = 30.0
    now: datetime | None = None
    timeline_events: bool = True
    smtp: dict[str, Any] = field(default_factory=dict)
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    systems: dict[str, dict[str, str]] = field(default_factory=dict)
    model: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> CoordinatorSettings:
        raw = dict(settings.section("coordinator")) if settings is not None else {}
        where = {"file": getattr(settings, "config_path", None), "table": "[coordinator]"}
        out = cls()
        env_allow = os.environ.get("PROCESSLENS_ALLOWLIST")
        out.allowlist = [str(h) for h in raw.pop("allowlist", [])] + ([h for h in env_allow.split(",") if h] if env_allow else [])
        for key in ("dashboard_url", "secret_env", "model"):
            if key in raw:
                setattr(out, key, str(raw.pop(key)))
        for key in ("max_attempts", "batch_size", "concurrency"):
            if key in raw:
                setattr(out, key, _positive_int(raw.pop(key), key, where))
        for key, attr in (("backoff_base", "backoff_base"), ("backoff_max", "backoff_max"), ("lease", "lease_seconds"),
                          ("timeout", "timeout"), ("interval", "interval")):
            if key in raw:
                setattr(out, attr, parse_duration(raw.pop(key), {**where, "field": key}))
        if "now" in raw:
            out.now = parse_time(raw.pop("now"), {**where, "field": "now"})
        if "now_from" in raw:  # a JSON file with {"now": ...}: the demo world's world.json
            out.now = _now_from(settings.resolve(raw.pop("now_from")), {**where, "field": "now_from"})
        if "timeline_events" in raw:
            out.timeline_events = bool(raw.pop("timeline_events"))
        for key in ("smtp", "contacts", "systems"):
            if key in raw:
                value = raw.pop(key)
                if not isinstance(value, dict):
                    raise ConfigError(f"[coordinator.{key}] must be a table", where=where)
                setattr(out, key, value)
        if raw:
            raise ConfigError(f"unknown key(s) in [coordinator]: {', '.join(sorted(raw))}", where=where,
                              hint="known: allowlist, dashboard_url, secret_env, max_attempts, backoff_base, backoff_max, "
                                   "lease, batch_size, concurrency, timeout, interval, now, now_from, timeline_events, smtp, "
                                   "contacts, systems, model")
        return out

    def contact(self, owner: str | None) -> dict[str, str]:
        """The escalation contact of an owner team (``[coordinator.contacts.TEAM]``), or an empty dict."""
        if not owner:
            return {}
        value = self.contacts.get(owner) or self.contacts.get(str(owner).lower()) or {}
        return value if isinstance(value, dict) else {"email": str(value)}

    def case_link(self, case_id: str) -> str:
        return f"{self.dashboard_url.rstrip('/')}/case?case_id={quote(str(case_id), safe='')}"


def parse_time(value: Any, where: dict[str, Any]) -> datetime:
    """A naive UTC datetime from a TOML datetime or an ISO string."""
    from datetime import UTC

    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{value!r} is not a timestamp", hint="write ISO 8601, e.g. 2026-11-24T12:00:00Z",
                              where=where) from None
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _now_from(path: Any, where: dict[str, Any]) -> datetime | None:
    """The evaluation clock from a JSON file's ``now`` (None while the file does not exist yet)."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))["now"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} has no readable \"now\": {exc}", where={**where, "file": str(path)},
                          hint="point now_from at a JSON file with {\"now\": \"2026-11-24T12:00:00Z\"}") from None
    return parse_time(value, {**where, "file": str(path)})


def _positive_int(value: Any, key: str, where: dict[str, Any]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive whole number, not {value!r}", where={**where, "field": key})
    return value


@dataclass
class Rule:
    """One ``[rules.NAME]`` table."""

    name: str
    when: str
    action: str
    target: Target
    steps: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=lambda: ["exception event"])
    cases: dict[str, Any] | None = None
    mode: str = "automatic"
    max_per_run: int | None = None
    max_per_hour: int | None = None
    cooldown_seconds: float = 86400.0
    disable_after: int = 5
    text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    min_waited_seconds: float | None = None
    description: str = ""
    enabled: bool = True

    @property
    def kind(self) -> str:
        return self.when

    def problems(self, cs: CoordinatorSettings) -> list[str]:
        """Why this rule cannot act right now (missing environment variables, target not allowed)."""
        out = []
        if self.target.channel == "http":
            url = self.target.resolved_url()
            if url is None and not self._url_from_system(cs):
                what = f"environment variable {self.target.url_env}" if self.target.url_env else "a target url"
                out.append(f"rule {self.name}: {what} is not set")
            elif url and "{" not in urlsplit(url).netloc and not host_allowed(url, cs.allowlist):
                out.append(f"rule {self.name}: target host {urlsplit(url).hostname} is not in [coordinator] allowlist")
        else:
            host = str(cs.smtp.get("host", ""))
            if not host:
                out.append(f"rule {self.name}: e-mail needs [coordinator.smtp] host")
            elif not host_allowed(f"{host}:{cs.smtp.get('port', 25)}", cs.allowlist):
                out.append(f"rule {self.name}: SMTP host {host} is not in [coordinator] allowlist")
        return out

    def _url_from_system(self, cs: CoordinatorSettings) -> bool:
        return self.action in ("reassign", "retry") and any(self.action in s for s in cs.systems.values())


def _str_list(value: Any, key: str, where: dict[str, Any]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a string or a list of strings", where={**where, "field": key})
    return list(value)


def parse_rule(name: str, raw: dict[str, Any], config_path: Any = None) -> Rule:
    """Validate one ``[rules.NAME]`` table; errors name the rule and field with a hint."""
    where = {"file": config_path, "rule": name}
    raw = dict(raw)
    when = raw.pop("when", None)
    if when not in WHEN:
        raise ConfigError(f"rule {name}: 'when' must be one of {', '.join(WHEN)}, not {when!r}", where={**where, "field": "when"},
                          hint='e.g. when = "stuck"')
    action = raw.pop("do", raw.pop("action", None))
    if action not in ACTIONS:
        raise ConfigError(f"rule {name}: 'do' must be one of {', '.join(ACTIONS)}, not {action!r}", where={**where, "field": "do"},
                          hint='e.g. do = "webhook"')
    mode = raw.pop("mode", "automatic")
    if mode not in MODES:
        raise ConfigError(f"rule {name}: 'mode' must be one of {', '.join(MODES)}, not {mode!r}", where={**where, "field": "mode"})
    traw = raw.pop("target", {})
    if not isinstance(traw, dict):
        raise ConfigError(f"rule {name}: 'target' must be a table", where={**where, "field": "target"},
                          hint=f"write [rules.{name}.target] with url = ... or url_env = ...")
    traw = dict(traw)
    channel = traw.pop("channel", "smtp" if action == "email" else "http")
    if channel not in ("http", "smtp"):
        raise ConfigError(f"rule {name}: target channel must be http or smtp", where={**where, "field": "target.channel"})
    target = Target(
        channel=channel,
        url=traw.pop("url", None),
        url_env=traw.pop("url_env", None),
        method=str(traw.pop("method", "POST")).upper(),
        headers={str(k): str(v) for k, v in traw.pop("headers", {}).items()},
        sign=bool(traw.pop("sign", True)),
        secret_env=traw.pop("secret_env", None),
        to=_str_list(traw.pop("to", None), "target.to", where),
        subject=traw.pop("subject", None),
    )
    if traw:
        raise ConfigError(f"rule {name}: unknown target key(s) {', '.join(sorted(traw))}", where=where,
                          hint="known: channel, url, url_env, method, headers, sign, secret_env, to, subject")
    if target.channel == "http" and not (target.url or target.url_env) and action not in ("reassign", "retry"):
        raise ConfigError(f"rule {name}: the target has no url", where={**where, "field": "target.url"},
                          hint=f"add [rules.{name}.target] url = \"https://...\" or url_env = \"ENV_VAR\"")
    if target.channel == "smtp" and not target.to and action not in ("escalate",):
        raise ConfigError(f"rule {name}: an e-mail target needs 'to'", where={**where, "field": "target.to"},
                          hint='e.g. to = ["ops@example.com"] or to = ["{contact_email}"]')
    cases = raw.pop("cases", None)
    if cases is not None and not isinstance(cases, dict):
        raise ConfigError(f"rule {name}: 'cases' must be a table of analytics filters", where={**where, "field": "cases"})
    payload = raw.pop("payload", {})
    if not isinstance(payload, dict):
        raise ConfigError(f"rule {name}: 'payload' must be a table", where={**where, "field": "payload"})

    def opt_int(key: str) -> int | None:
        v = raw.pop(key, None)
        return None if v is None else _positive_int(v, key, where)

    rule = Rule(
        name=name, when=when, action=action, target=target,
        steps=_str_list(raw.pop("steps", None), "steps", where),
        types=_str_list(raw.pop("types", None), "types", where),
        owners=_str_list(raw.pop("owners", None), "owners", where),
        kinds=_str_list(raw.pop("kinds", None), "kinds", where) or ["exception event"],
        cases=cases, mode=mode,
        max_per_run=opt_int("max_per_run"), max_per_hour=opt_int("max_per_hour"),
        cooldown_seconds=parse_duration(raw.pop("cooldown", "1d"), {**where, "field": "cooldown"}),
        disable_after=opt_int("disable_after") or 5,
        text=raw.pop("text", None), payload=payload, model=raw.pop("model", None),
        min_waited_seconds=(parse_duration(raw.pop("min_waited"), {**where, "field": "min_waited"})
                            if "min_waited" in raw else None),
        description=str(raw.pop("description", "")),
        enabled=bool(raw.pop("enabled", True)),
    )
    if raw:
        raise ConfigError(f"rule {name}: unknown key(s) {', '.join(sorted(raw))}", where=where,
                          hint="known: when, steps, types, owners, kinds, cases, do, target, mode, max_per_run, max_per_hour, "
                               "cooldown, disable_after, text, payload, model, min_waited, description, enabled")
    for key in ("text",):
        if rule.text:
            render(rule.text, dict.fromkeys(TEMPLATE_FIELDS, ""), where={**where, "field": key})
    return rule


def load_rules(settings: Any) -> list[Rule]:
    """All rules of the configuration, in file order."""
    section = settings.section("rules") if settings is not None else {}
    rules = []
    for name, raw in section.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"[rules.{name}] must be a table", where={"file": settings.config_path})
        rules.append(parse_rule(name, raw, settings.config_path))
    return rules


def get_rule(settings: Any, name: str) -> Rule:
    rules = {r.name: r for r in load_rules(settings)}
    if name not in rules:
        raise ConfigError(f"no rule named {name!r}", where={"file": getattr(settings, "config_path", None)},
                          hint=f"rules in the config: {', '.join(rules) or 'none; add a [rules.NAME] table'}")
    return rules[name]


def check_allowed(url: str, cs: CoordinatorSettings) -> None:
    """Refuse a URL whose host is not allowlisted (raised before any request is made)."""
    if not url.lower().startswith(("http://", "https://")):
        raise ActionError(f"target {url!r} is not an http(s) URL", hint="targets must be http:// or https:// URLs")
    if not host_allowed(url, cs.allowlist):
        raise ActionError(
            f"target host {urlsplit(url).hostname!r} is not in the allowlist",
            hint="add the host to [coordinator] allowlist in processlens.toml (or PROCESSLENS_ALLOWLIST) if it is trusted",
            where={"host": urlsplit(url).hostname},
        )
