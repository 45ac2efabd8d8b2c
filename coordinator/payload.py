"""Turn a match (a stuck case, an exception, ...) into an outbox row: target, templated payload, status.

Shared by rules (:mod:`coordinator.engine`) and operators (:mod:`coordinator.manual`), so both
produce the same actions.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from coordinator.outbox import new_key, now_utc
from coordinator.rules import DEFAULT_TEXT, CoordinatorSettings, Target, host_allowed, human_duration, render
from processlens.errors import ActionError


def _clean(value: Any) -> Any:
    """JSON-friendly scalars: NaN -> None, numpy -> Python, timestamps -> ISO text."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


def template_values(match: dict[str, Any], *, rule: str, action: str, kind: str, cs: CoordinatorSettings,
                    now: datetime) -> dict[str, Any]:
    """The fields a rule's templates may use (see :data:`coordinator.rules.TEMPLATE_FIELDS`)."""
    m = {k: _clean(v) for k, v in match.items()}
    owner = m.get("owner")
    contact = cs.contact(owner)
    reasons = m.get("reasons")
    if isinstance(reasons, list):
        reasons = "; ".join(str(r) for r in reasons)
    return {
        "case_id": str(m["case_id"]),
        "step": m.get("step") or m.get("type"),
        "owner": owner,
        "contact": contact.get("name") or contact.get("email") or owner,
        "contact_email": contact.get("email"),
        "waited_seconds": m.get("waited_seconds"),
        "waited": human_duration(m.get("waited_seconds")),
        "sla_seconds": m.get("sla_seconds"),
        "sla": human_duration(m.get("sla_seconds")) if m.get("sla_seconds") is not None else "none",
        "normal_seconds": m.get("normal_seconds"),
        "reasons": reasons,
        "type": m.get("type") or m.get("step"),
        "kind": kind,
        "rule": rule,
        "action": action,
        "link": cs.case_link(str(m["case_id"])),
        "now": now.isoformat(),
        "source": m.get("source"),
        "last_activity": m.get("last_activity"),
    }


def resolve_target(action: str, target: Target, values: dict[str, Any], cs: CoordinatorSettings) -> dict[str, Any]:
    """The stored form of the target: a rendered URL, or the name of the env var holding it (resolved
    at send time so secret URLs are never stored), or the mail recipients."""
    if target.channel == "smtp":
        to = [render(t, values) for t in target.to] if target.to else [values.get("contact_email") or ""]
        to = [t for t in to if t]
        if not to:
            raise ActionError(f"no e-mail recipient for owner {values.get('owner')!r}",
                              hint="add [coordinator.contacts.OWNER] email = ... or set the rule's target 'to'")
        return {"channel": "smtp", "to": to, "host": str(cs.smtp.get("host", ""))}
    out: dict[str, Any] = {"channel": "http", "method": target.method, "sign": target.sign,
                           "secret_env": target.secret_env, "headers": target.headers}
    if target.url_env:
        out["url_env"] = target.url_env
    elif target.url:
        out["url"] = render(os.path.expandvars(target.url), values, url=True)
    else:  # reassign / retry through the source system's API
        system = cs.systems.get(values.get("source") or "", {})
        path = system.get(action)
        if not path or not system.get("base_url"):
            raise ActionError(f"no {action} endpoint for source system {values.get('source')!r}",
                              hint=f"add [coordinator.systems.{values.get('source') or 'NAME'}] base_url and {action} = \"/path/{{case_id}}\"")
        out["url"] = urljoin(system["base_url"].rstrip("/") + "/", render(path, values, url=True).lstrip("/"))
    return out


def target_host(target: dict[str, Any], values: dict[str, Any]) -> str | None:
    """The host the target will reach now (env resolved), for the allowlist check at decision time."""
    if target["channel"] == "smtp":
        return None
    url = target.get("url") or os.environ.get(target.get("url_env") or "", "")
    return url or None


def build_body(action: str, kind: str, values: dict[str, Any], text: str, extra: dict[str, Any], key: str,
               target: dict[str, Any]) -> str:
    """The exact JSON text that is sent (and hashed, and signed)."""
    if target["channel"] == "smtp":
        subject = extra.get("subject") or f"[processlens] {kind.replace('_', ' ')}: case {values['case_id']} at {values['step']}"
        body: dict[str, Any] = {"to": target["to"], "subject": render(subject, values), "text": text}
        return json.dumps(body, sort_keys=True)
    if action == "chat":
        body = {"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn",
                                              "text": f"case <{values['link']}|{values['case_id']}> · {values['rule']}"}]},
        ]}
    else:
        body = {
            "idempotency_key": key, "action": action, "kind": kind, "rule": values["rule"],
            "case_id": values["case_id"], "step": values["step"], "owner": values["owner"],
            "contact": values["contact"], "contact_email": values["contact_email"],
            "waited_seconds": values["waited_seconds"], "waited": values["waited"],
            "sla_seconds": values["sla_seconds"], "normal_seconds": values["normal_seconds"],
            "reasons": values["reasons"], "type": values["type"], "source": values["source"],
            "link": values["link"], "text": text, "decided_at": values["now"],
        }
        if action == "ticket":
            body["title"] = f"[processlens] {kind.replace('_', ' ')}: case {values['case_id']} at {values['step']}"
            body["description"] = text
    for k, v in extra.items():
        if k != "subject":
            body[k] = render(v, values) if isinstance(v, str) else v
    return json.dumps(body, sort_keys=True, default=str)


def build_action(*, match: dict[str, Any], action: str, target: Target, kind: str, rule: str | None, actor: str,
                 origin: str, mode: str, cs: CoordinatorSettings, now: datetime, text: str | None = None,
                 extra: dict[str, Any] | None = None, reason: str | None = None) -> dict[str, Any]:
    """One outbox row (not yet inserted). Targets outside the allowlist give a row with status ``refused``."""
    values = template_values(match, rule=rule or actor, action=action, kind=kind, cs=cs, now=now)
    key = new_key()
    stored_target = resolve_target(action, target, values, cs)
    body_text = render(text or DEFAULT_TEXT.get(kind, DEFAULT_TEXT["manual"]), values)
    payload = build_body(action, kind, values, body_text, extra or {}, key, stored_target)
    status, error = ("awaiting_approval" if mode == "approval" else "pending"), None
    url = target_host(stored_target, values)
    if stored_target["channel"] == "http" and url and not host_allowed(url, cs.allowlist):
        status, error = "refused", f"target host {urlsplit(url).hostname!r} is not in the allowlist"
    if stored_target["channel"] == "smtp":
        host = f"{cs.smtp.get('host', '')}:{cs.smtp.get('port', 25)}"
        if not host_allowed(host, cs.allowlist):
            status, error = "refused", f"SMTP host {cs.smtp.get('host')!r} is not in the allowlist"
    created = now_utc()
    return {
        "idempotency_key": key, "origin": origin, "rule": rule, "actor": actor, "kind": kind,
        "action_type": action, "channel": stored_target["channel"], "case_id": values["case_id"],
        "step": values["step"], "reason": reason or _reason(kind, values), "target": stored_target,
        "payload": payload, "status": status, "dead_after": cs.max_attempts, "next_attempt_at": created,
        "decided_at": now, "created_at": created, "last_error": error,
        "details": {"values": {k: v for k, v in values.items() if k not in ("link",)},
                    "owner": values["owner"], "waited_seconds": values["waited_seconds"],
                    "sla_seconds": values["sla_seconds"], "last_ts": _clean(match.get("last_ts"))},
    }


def _reason(kind: str, v: dict[str, Any]) -> str:
    if kind == "stuck":
        return f"waited {v['waited']} at {v['step']} (SLA {v['sla']}; {v.get('reasons') or 'stuck'})"
    if kind == "unhandled_exception":
        return f"exception {v['type']} not handled"
    if kind == "deviation":
        return f"deviation {v['type']}"
    if kind == "event":
        return f"event {v['type']} arrived"
    return "requested by an operator"
