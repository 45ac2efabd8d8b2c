"""Names that mark processlens's own events in the store.

The coordinator records every corrective action as an event of its case (source ``processlens``,
activity ``Action: <type>``) so it shows on timelines and maps. Those events are not steps of
the business process: conformance and stuck-case detection skip them.
"""

ACTION_SOURCE = "processlens"
ACTION_ACTIVITY_PREFIX = "Action: "


def is_action_activity(name: str) -> bool:
    """True for the activity names processlens gives its own action events."""
    return name.startswith(ACTION_ACTIVITY_PREFIX)
