"""Delivery channels: signed HTTP requests (webhooks, chat, tickets, source-system APIs) and SMTP mail.

Every request goes to a host on the allowlist (checked here, right before sending, whatever the
rule said), carries the action's idempotency key, and an HMAC-SHA256 signature of the exact body
with a secret read from the environment. Secrets are never stored or logged: error texts name
the host only, and URLs from environment variables are resolved at send time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from coordinator.rules import CoordinatorSettings, check_allowed, host_allowed, render
from processlens import __version__
from processlens.errors import ActionError, ProcesslensError

SIGNATURE_HEADER = "X-Processlens-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retryable: bool = True
    refused: bool = False
    retry_after: float | None = None
    duration_ms: float = 0.0


def sign(body: bytes, secret: str) -> str:
    """The signature header value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """Check a received signature header (for receivers; constant-time)."""
    return bool(header) and hmac.compare_digest(sign(body, secret), header)


def redact(url: str) -> str:
    """``scheme://host:port/…``: enough to debug, nothing secret (paths of chat webhooks are tokens)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{f':{p.port}' if p.port else ''}/…"


def resolve_url(action: dict[str, Any]) -> str:
    """The request URL of an HTTP action: stored as rendered, or from an environment variable now."""
    target = action["target"]
    if target.get("url"):
        return target["url"]
    env = target.get("url_env")
    value = os.environ.get(env or "")
    if not value:
        raise ActionError(f"environment variable {env} with the target URL is not set",
                          hint=f"export {env}=https://... in the coordinator's environment")
    return render(value, action.get("details", {}).get("values", {}), url=True)


def _secret(action: dict[str, Any], cs: CoordinatorSettings) -> str | None:
    target = action["target"]
    if not target.get("sign", True):
        return None
    env = target.get("secret_env") or cs.secret_env
    secret = os.environ.get(env)
    if not secret:
        raise ActionError(f"environment variable {env} with the signing secret is not set",
                          hint=f"export {env}=<shared secret>, or set sign = false on the rule's target")
    return secret


def send_http(action: dict[str, Any], cs: CoordinatorSettings, client: httpx.Client) -> SendResult:
    """POST (or the target's method) the stored payload, signed, with the idempotency key."""
    t0 = time.perf_counter()
    try:
        url = resolve_url(action)
        check_allowed(url, cs)
        secret = _secret(action, cs)
    except ActionError as exc:
        refused = "allowlist" in exc.message
        return SendResult(False, error=exc.message, retryable=False, refused=refused)
    body = action["payload"].encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"processlens/{__version__}",
        IDEMPOTENCY_HEADER: action["idempotency_key"],
        "X-Processlens-Action-Id": str(action["action_id"]),
        "X-Processlens-Attempt": str(int(action.get("attempts", 0)) + 1),
    }
    for k, v in (action["target"].get("headers") or {}).items():
        headers[k] = os.path.expandvars(v)  # e.g. "Bearer ${TICKET_TOKEN}": resolved now, never stored
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    host = redact(url)
    try:
        resp = client.request(action["target"].get("method", "POST"), url, content=body, headers=headers,
                              timeout=cs.timeout)
    except httpx.TimeoutException:
        return SendResult(False, error=f"timeout after {cs.timeout:g}s from {host}", duration_ms=_ms(t0))
    except httpx.HTTPError as exc:
        return SendResult(False, error=f"{type(exc).__name__} talking to {host}", duration_ms=_ms(t0))
    code = resp.status_code
    if 200 <= code < 300:
        return SendResult(True, status_code=code, duration_ms=_ms(t0))
    retry_after = None
    if resp.headers.get("Retry-After", "").isdigit():
        retry_after = float(resp.headers["Retry-After"])
    return SendResult(False, status_code=code, error=f"HTTP {code} from {host}",
                      retryable=code in RETRYABLE_STATUS or code >= 500, retry_after=retry_after, duration_ms=_ms(t0))


def send_mail(action: dict[str, Any], cs: CoordinatorSettings) -> SendResult:
    """Send the stored mail (subject, to, text) via ``[coordinator.smtp]``; Message-ID carries the key."""
    t0 = time.perf_counter()
    smtp = cs.smtp
    host, port = str(smtp.get("host", "")), int(smtp.get("port", 25))
    if not host or not host_allowed(f"{host}:{port}", cs.allowlist):
        return SendResult(False, error=f"SMTP host {host or '(none)'} is not in the allowlist", retryable=False, refused=True)
    mail = json.loads(action["payload"])
    msg = EmailMessage()
    msg["From"] = smtp.get("from", "processlens@localhost")
    msg["To"] = ", ".join(mail["to"])
    msg["Subject"] = mail["subject"]
    msg["Message-ID"] = f"<{action['idempotency_key']}@processlens>"
    msg[IDEMPOTENCY_HEADER] = action["idempotency_key"]
    msg["X-Processlens-Action-Id"] = str(action["action_id"])
    msg.set_content(mail["text"])
    try:
        with smtplib.SMTP(host, port, timeout=cs.timeout) as server:
            if smtp.get("starttls"):
                server.starttls()
            user_env, pass_env = smtp.get("username_env"), smtp.get("password_env")
            if user_env and pass_env and os.environ.get(user_env):
                server.login(os.environ[user_env], os.environ.get(pass_env, ""))
            server.send_message(msg)
    except smtplib.SMTPRecipientsRefused:
        return SendResult(False, error=f"recipients refused by {host}", retryable=False, duration_ms=_ms(t0))
    except (smtplib.SMTPException, OSError) as exc:
        return SendResult(False, error=f"{type(exc).__name__} talking to SMTP {host}:{port}", duration_ms=_ms(t0))
    return SendResult(True, status_code=250, duration_ms=_ms(t0))


def send(action: dict[str, Any], cs: CoordinatorSettings, client: httpx.Client) -> SendResult:
    """Deliver one action through its channel; never raises for delivery problems."""
    try:
        if action["channel"] == "smtp":
            return send_mail(action, cs)
        return send_http(action, cs, client)
    except ProcesslensError as exc:
        return SendResult(False, error=exc.message, retryable=False)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def make_client(cs: CoordinatorSettings) -> httpx.Client:
    """One pooled client; redirects are not followed (a redirect could leave the allowlist)."""
    limits = httpx.Limits(max_connections=cs.concurrency, max_keepalive_connections=cs.concurrency)
    return httpx.Client(follow_redirects=False, limits=limits, timeout=cs.timeout, trust_env=False)
