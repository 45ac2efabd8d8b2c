"""Who is looking, and what they may do.

Roles, each including the rights of the ones before it:
``leadership`` reads; ``operator`` also acts on cases (dispatches actions); ``analyst`` also
edits models, rules and targets; ``admin`` also manages sources and users.

``[dashboard.auth] mode`` in processlens.toml chooses how people sign in:

- ``"none"`` (default): no login, everyone is a local admin. The server then listens on
  127.0.0.1 only (see ``dashboard.server``); this is what the demo uses.
- ``"local"``: a users file (``users_file``, TOML) with bcrypt-hashed passwords, managed with
  ``processlens dashboard user add NAME --role operator``.
- ``"oidc"``: Streamlit's OpenID Connect login (``st.login``, configured in
  ``.streamlit/secrets.toml [auth]``); roles come from ``[dashboard.auth.roles]`` (e-mail → role)
  and ``default_role``.

With a login configured, an unauthenticated visitor sees nothing but the login form, and
every action calls :func:`require` on the server before it runs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

from processlens.errors import ConfigError

ROLES = ("leadership", "operator", "analyst", "admin")
PERMISSIONS = {"read": "leadership", "act": "operator", "edit": "analyst", "admin": "admin"}
MODES = ("none", "local", "oidc")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    display: str = ""

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)


LOCAL_ADMIN = User("local-admin", "admin", "Local admin")


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (read, act, edit, admin)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; use one of {', '.join(PERMISSIONS)}")
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(PERMISSIONS[permission])


def auth_config(settings) -> dict[str, Any]:
    cfg = settings.section("dashboard").get("auth", {}) if settings is not None else {}
    mode = cfg.get("mode", "none")
    if mode not in MODES:
        raise ConfigError(f"[dashboard.auth] mode = {mode!r} is not known", hint=f"use one of {', '.join(MODES)}",
                          where={"file": getattr(settings, "config_path", None)})
    return {**cfg, "mode": mode}


def users_file(settings) -> Path:
    cfg = auth_config(settings)
    return settings.resolve(cfg.get("users_file", "users.toml"))


# -- local users file -------------------------------------------------------------------------
def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ConfigError("the password is shorter than 8 characters", hint="choose a longer password")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def load_users(path: Path) -> dict[str, dict[str, Any]]:
    """Read ``[users.NAME] password_hash, role, name`` from a users TOML file."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", where={"file": str(path)},
                          hint="fix the line named above or recreate it with 'processlens dashboard user add'") from exc
    users = data.get("users", {})
    for name, entry in users.items():
        if entry.get("role") not in ROLES:
            raise ConfigError(f"user {name!r} has role {entry.get('role')!r}", where={"file": str(path), "user": name},
                              hint=f"set role to one of {', '.join(ROLES)}")
        if not str(entry.get("password_hash", "")).startswith("$2"):
            raise ConfigError(f"user {name!r} has no bcrypt password_hash", where={"file": str(path), "user": name},
                              hint="set it with 'processlens dashboard user add NAME --role ROLE'")
    return users


def save_user(path: Path, name: str, role: str, password: str, display: str = "") -> None:
    """Add or replace one user in the users file (the password is stored as a bcrypt hash)."""
    import tomli_w

    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not known", hint=f"use one of {', '.join(ROLES)}")
    users = load_users(path)
    users[name] = {"role": role, "password_hash": hash_password(password), **({"name": display} if display else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps({"users": users}), encoding="utf-8")
    try:
        path.chmod(0o600)
    except OSError:
        pass


def verify(users: dict[str, dict[str, Any]], name: str, password: str) -> User | None:
    """The user when the password matches, else None (same cost whether or not the name exists)."""
    entry = users.get(name)
    hashed = entry["password_hash"].encode() if entry else bcrypt.hashpw(b"x", bcrypt.gensalt())
    ok = bcrypt.checkpw(password.encode(), hashed)
    if entry and ok:
        return User(name, entry["role"], entry.get("name", name))
    return None


def oidc_role(cfg: dict[str, Any], email: str | None) -> str:
    roles = cfg.get("roles", {})
    role = roles.get(email or "", cfg.get("default_role", "leadership"))
    return role if role in ROLES else "leadership"


# -- Streamlit glue -----------------------------------------------------------------------------
def current_user() -> User | None:
    """The signed-in user of this session, or the local admin when no login is configured."""
    import streamlit as st

    from dashboard import data

    cfg = auth_config(data.settings())
    if cfg["mode"] == "none":
        return LOCAL_ADMIN
    if cfg["mode"] == "oidc":
        user = st.user
        if not getattr(user, "is_logged_in", False):
            return None
        email = user.get("email")
        return User(email or user.get("sub", "user"), oidc_role(cfg, email), user.get("name", email or ""))
    return st.session_state.get("_user")


def login_gate() -> User:
    """Return the user, or show only the login form and stop the script."""
    import streamlit as st

    from dashboard import data

    user = current_user()
    if user is not None:
        return user
    cfg = auth_config(data.settings())
    st.title("processlens")
    st.caption("Sign in to see your processes.")
    if cfg["mode"] == "oidc":
        if st.button("Sign in", type="primary"):
            provider = cfg.get("provider")
            st.login(provider) if provider else st.login()
        st.stop()
    with st.form("login"):
        name = st.text_input("User name")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        found = verify(load_users(users_file(data.settings())), name.strip(), password)
        if found is None:
            st.error("Wrong user name or password.")
        else:
            st.session_state["_user"] = found
            st.rerun()
    st.stop()
    raise AssertionError("unreachable")


def logout() -> None:
    import streamlit as st

    from dashboard import data

    if auth_config(data.settings())["mode"] == "oidc":
        st.logout()
    st.session_state.pop("_user", None)
    st.rerun()


def require(permission: str) -> bool:
    """Server-side check before an action: show why it is refused and return False if not allowed."""
    import streamlit as st

    user = current_user()
    if user is None or not user.can(permission):
        role = user.role if user else "signed out"
        st.error(f"Your role ({role}) may not do this: it needs the '{PERMISSIONS[permission]}' role or higher.",
                 icon=":material/lock:")
        return False
    return True
