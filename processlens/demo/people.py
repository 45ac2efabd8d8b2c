"""Resources (people and system users) as integer codes with speed and calendar, and who does what."""

from __future__ import annotations

import numpy as np

from processlens.demo import spec as s

NO_RESOURCE = -1

RESOURCES: list[str] = [p.name for team in s.TEAMS.values() for p in team] + list(s.SYSTEM_USERS)
_CODE = {name: i for i, name in enumerate(RESOURCES)}
SPEED = np.array([p.speed for team in s.TEAMS.values() for p in team] + list(s.SYSTEM_USERS.values()))
CALENDAR = np.array(
    [s.CAL_WAREHOUSE if team == "Warehouse" else s.CAL_OFFICE for team, members in s.TEAMS.items() for _ in members]
    + [s.CAL_ALWAYS] * len(s.SYSTEM_USERS),
    dtype=np.int8,
)
TEAM_CODES = {team: np.array([_CODE[p.name] for p in members]) for team, members in s.TEAMS.items()}
TEAM_CUM = {team: np.cumsum([p.share for p in members]) / sum(p.share for p in members) for team, members in s.TEAMS.items()}

#: Team doing each activity (None: a system without an operator, the payment provider).
TEAM_OF = {a: s.OWNER[a] for a in s.OWNER}
TEAM_OF[s.PAYMENT_FAILED] = None
TEAM_OF[s.PAYMENT_RECEIVED] = None
TEAM_OF[s.ADDRESS_INVALID] = "Warehouse"
TEAM_OF[s.RETRY_PAYMENT] = "Finance"


def code(name: str) -> int:
    return _CODE[name]


def assign(act: np.ndarray, channel: np.ndarray, amount: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resource code of each event; ``channel``/``amount`` are the case's, per event."""
    res = np.full(len(act), NO_RESOURCE, dtype=np.int16)
    u = rng.random(len(act))
    for team in s.TEAMS:
        acts = [a for a, t in TEAM_OF.items() if t == team]
        sel = np.flatnonzero(np.isin(act, acts))
        res[sel] = TEAM_CODES[team][np.minimum(np.searchsorted(TEAM_CUM[team], u[sel], side="right"), len(TEAM_CUM[team]) - 1)]
    create = act == s.CREATE_ORDER
    res[create & (channel == s.CHANNELS.index("web"))] = _CODE["webshop"]
    res[create & (channel == s.CHANNELS.index("edi"))] = _CODE["edi-gateway"]
    auto_credit = (act == s.CHECK_CREDIT) & (amount < 5000) & (rng.random(len(act)) < 0.8)
    res[auto_credit] = _CODE["credit-engine"]
    return res


def speed(res: np.ndarray) -> np.ndarray:
    return np.where(res >= 0, SPEED[np.maximum(res, 0)], 1.0)


def calendar(res: np.ndarray) -> np.ndarray:
    return np.where(res >= 0, CALENDAR[np.maximum(res, 0)], s.CAL_ALWAYS).astype(np.int8)


def names(res: np.ndarray) -> np.ndarray:
    """Object array of names (None where no resource)."""
    table = np.array([*RESOURCES, None], dtype=object)
    return table[np.where(res >= 0, res, len(RESOURCES))]
