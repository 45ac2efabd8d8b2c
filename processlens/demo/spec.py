"""The order-to-cash process of the demo world, as fixed in docs/decisions.md ("The demo world").

Everything the generator needs to know about the business lives here: activities with their
system and owner team, the happy path and its expected branches, SLAs, the named people of each
team (with workload shares and speeds), the waiting-time distributions and the injection rates.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600
DAY = 86400

# Activity codes (small integers, used in the vectorised arrays).
CREATE_ORDER, CHECK_CREDIT, APPROVE_ORDER, REJECT_ORDER = 0, 1, 2, 3
PICK_GOODS, PACK_GOODS, ADDRESS_INVALID, CORRECT_ADDRESS = 4, 5, 6, 7
SHIP_GOODS, CREATE_INVOICE, PAYMENT_FAILED, RETRY_PAYMENT = 8, 9, 10, 11
PAYMENT_RECEIVED, CLOSE_ORDER, OPEN_TICKET, RESOLVE_TICKET = 12, 13, 14, 15

ACTIVITIES = [
    "Create Order", "Check Credit", "Approve Order", "Reject Order",
    "Pick Goods", "Pack Goods", "Address Invalid", "Correct Address",
    "Ship Goods", "Create Invoice", "Payment Failed", "Retry Payment",
    "Payment Received", "Close Order", "Open Ticket", "Resolve Ticket",
]
ACTIVITY_CODE = {name: code for code, name in enumerate(ACTIVITIES)}

SYSTEM = {
    CREATE_ORDER: "ERP", CHECK_CREDIT: "ERP", APPROVE_ORDER: "ERP", REJECT_ORDER: "ERP",
    PICK_GOODS: "WMS", PACK_GOODS: "WMS", ADDRESS_INVALID: "WMS", CORRECT_ADDRESS: "ERP",
    SHIP_GOODS: "WMS", CREATE_INVOICE: "ERP", PAYMENT_FAILED: "PSP", RETRY_PAYMENT: "PSP",
    PAYMENT_RECEIVED: "PSP", CLOSE_ORDER: "ERP", OPEN_TICKET: "Helpdesk", RESOLVE_TICKET: "Helpdesk",
}

OWNER = {
    CREATE_ORDER: "Sales", CHECK_CREDIT: "Finance", APPROVE_ORDER: "Sales", REJECT_ORDER: "Sales",
    PICK_GOODS: "Warehouse", PACK_GOODS: "Warehouse", ADDRESS_INVALID: "Warehouse",
    CORRECT_ADDRESS: "Customer Service", SHIP_GOODS: "Warehouse", CREATE_INVOICE: "Finance",
    PAYMENT_FAILED: "Finance", RETRY_PAYMENT: "Finance", PAYMENT_RECEIVED: "Finance", CLOSE_ORDER: "Sales",
    OPEN_TICKET: "Customer Service", RESOLVE_TICKET: "Customer Service",
}

FINAL = frozenset({CLOSE_ORDER, REJECT_ORDER})
SIDE = frozenset({OPEN_TICKET, RESOLVE_TICKET})  # optional side activities, not model steps
EXCEPTION_HANDLER = {ADDRESS_INVALID: CORRECT_ADDRESS, PAYMENT_FAILED: RETRY_PAYMENT}

#: The step the reference model enables after an activity (happy path; handler after an exception).
NEXT_STEP = {
    CREATE_ORDER: CHECK_CREDIT, CHECK_CREDIT: APPROVE_ORDER, APPROVE_ORDER: PICK_GOODS,
    PICK_GOODS: PACK_GOODS, PACK_GOODS: SHIP_GOODS, ADDRESS_INVALID: CORRECT_ADDRESS,
    CORRECT_ADDRESS: SHIP_GOODS, SHIP_GOODS: CREATE_INVOICE, CREATE_INVOICE: PAYMENT_RECEIVED,
    PAYMENT_FAILED: RETRY_PAYMENT, RETRY_PAYMENT: PAYMENT_RECEIVED, PAYMENT_RECEIVED: CLOSE_ORDER,
}
#: Every step the model enables after an activity (a choice after Check Credit).
ENABLED_STEPS = {**{a: (s,) for a, s in NEXT_STEP.items()}, CHECK_CREDIT: (APPROVE_ORDER, REJECT_ORDER)}

#: Maximum waiting time before a step, since the previous event of the case.
SLA_SECONDS = {
    CHECK_CREDIT: 1 * DAY, APPROVE_ORDER: 2 * DAY, REJECT_ORDER: 2 * DAY, PICK_GOODS: 2 * DAY,
    PACK_GOODS: 1 * DAY, SHIP_GOODS: 2 * DAY, CORRECT_ADDRESS: 1 * DAY, CREATE_INVOICE: 1 * DAY,
    PAYMENT_RECEIVED: 14 * DAY, RETRY_PAYMENT: 2 * DAY, CLOSE_ORDER: 2 * DAY,
}

DEVIATIONS = ["skipped_credit_check", "duplicate_invoice", "rework_loop", "wrong_order"]

# -- people and calendars ---------------------------------------------------------------------
CAL_ALWAYS, CAL_OFFICE, CAL_WAREHOUSE = 0, 1, 2
#: (opening second of day, closing second of day, works on Saturday) in Europe/Berlin local time.
CALENDAR_HOURS = {CAL_OFFICE: (8 * HOUR, 18 * HOUR, False), CAL_WAREHOUSE: (6 * HOUR, 22 * HOUR, True)}


@dataclass(frozen=True)
class Person:
    name: str
    share: float  # share of the team's work
    speed: float  # multiplies waiting times before the person's steps (lower is faster)


TEAMS: dict[str, list[Person]] = {
    "Sales": [
        Person("Anna Schmidt", 0.26, 0.8), Person("Lukas Becker", 0.20, 1.0), Person("Sofia Rossi", 0.19, 1.1),
        Person("Jonas Wagner", 0.15, 0.9), Person("Mia Hoffmann", 0.12, 1.5), Person("David Klein", 0.08, 1.2),
    ],
    "Finance": [
        Person("Petra Neumann", 0.38, 0.85), Person("Tobias Braun", 0.27, 1.0),
        Person("Elif Yilmaz", 0.22, 1.1), Person("Markus Schulz", 0.13, 1.6),
    ],
    "Warehouse": [
        Person("Jan Kowalski", 0.19, 0.8), Person("Mehmet Demir", 0.17, 0.9), Person("Laura Fischer", 0.15, 1.0),
        Person("Stefan Koch", 0.13, 1.0), Person("Nina Richter", 0.12, 1.2), Person("Piotr Nowak", 0.10, 1.1),
        Person("Olga Ivanova", 0.08, 1.3), Person("Felix Wolf", 0.06, 1.7),
    ],
    "Customer Service": [
        Person("Sarah Meyer", 0.35, 0.9), Person("Ali Hassan", 0.30, 1.0),
        Person("Julia Lange", 0.20, 1.2), Person("Tom Berger", 0.15, 1.4),
    ],
}
#: System users: they work around the clock.
SYSTEM_USERS = {"webshop": 1.0, "edi-gateway": 1.0, "credit-engine": 0.05}


@dataclass(frozen=True)
class Wait:
    """Log-normal waiting time before a step: median and spread; capped (then calendars apply)."""

    median_h: float
    sigma: float
    cap_h: float


#: Waiting time before each activity (since the case's previous event), by target activity.
WAIT_BEFORE = {
    CHECK_CREDIT: Wait(3, 0.9, 30), APPROVE_ORDER: Wait(6, 0.8, 60), REJECT_ORDER: Wait(10, 0.7, 60),
    PICK_GOODS: Wait(12, 0.7, 72), PACK_GOODS: Wait(2, 0.8, 30), ADDRESS_INVALID: Wait(0.5, 0.6, 6),
    CORRECT_ADDRESS: Wait(8, 0.8, 40), SHIP_GOODS: Wait(5, 0.8, 60), CREATE_INVOICE: Wait(4, 0.9, 36),
    PAYMENT_RECEIVED: Wait(7 * 24, 0.6, 30 * 24), PAYMENT_FAILED: Wait(3 * 24, 0.7, 14 * 24),
    RETRY_PAYMENT: Wait(18, 0.8, 72), CLOSE_ORDER: Wait(10, 0.8, 72),
}
#: Overrides for particular transitions (previous activity, activity).
WAIT_TRANSITION = {
    (RETRY_PAYMENT, PAYMENT_RECEIVED): Wait(2, 0.8, 48),
    (PAYMENT_FAILED, PAYMENT_RECEIVED): Wait(5 * 24, 0.6, 20 * 24),
    (PACK_GOODS, PICK_GOODS): Wait(3, 0.7, 24),
    (CREATE_INVOICE, CREATE_INVOICE): Wait(1, 0.8, 24),
    (CREATE_ORDER, APPROVE_ORDER): Wait(2, 0.8, 24),
}

# -- case mix ------------------------------------------------------------------------------------
CHANNELS = ["web", "sales", "edi"]
CHANNEL_SHARE = [0.55, 0.30, 0.15]
REGIONS = ["DE-North", "DE-South", "DE-West", "DE-East", "AT", "CH"]
REGION_SHARE = [0.22, 0.24, 0.2, 0.14, 0.12, 0.08]
WAREHOUSE_OF_REGION = ["Hamburg DC", "Munich DC", "Hamburg DC", "Leipzig DC", "Munich DC", "Munich DC"]
PRIORITIES = ["normal", "high", "urgent"]
PRIORITY_SHARE = [0.8, 0.15, 0.05]
PRIORITY_SPEED = [1.0, 0.8, 0.55]

#: Injection rates (shares of the cases they can apply to).
RATES = {
    "rejected": 0.06,
    "skipped_credit_check": 0.03,
    "rework_loop": 0.04,
    "duplicate_invoice": 0.02,
    "wrong_order": 0.03,
    "address_invalid": 0.05,  # of which handled / continued without handling:
    "address_unhandled": 0.12,
    "payment_failed": 0.08,
    "payment_unhandled": 0.08,
    "payment_second_failure": 0.15,
    "stuck": 0.015,
    "ticket": 0.06,
    "ticket_if_exception": 0.35,
    "ticket_if_stuck": 0.5,
}
#: Where stuck cases wait (the step), with relative weights.
STUCK_STEPS = {
    CHECK_CREDIT: 1.0, APPROVE_ORDER: 1.5, PICK_GOODS: 2.0, PACK_GOODS: 1.0, SHIP_GOODS: 1.5,
    CREATE_INVOICE: 1.5, PAYMENT_RECEIVED: 2.0, CLOSE_ORDER: 1.0, CORRECT_ADDRESS: 1.0, RETRY_PAYMENT: 1.5,
}
HISTORY_DAYS = 400
