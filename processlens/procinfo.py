"""Facts about running processes that benchmarks and workers report."""

from __future__ import annotations


def status_kb(field: str, pid: int | str = "self") -> int | None:
    """A memory figure of ``/proc/PID/status`` in KiB (``VmHWM``, ``VmRSS``, ...), or None when the
    process or /proc is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_kb() -> int:
    """Peak RSS of this process so far, in KiB: ``VmHWM`` of its own memory map.

    Not ``ru_maxrss``: Linux carries that over ``exec`` from the process that forked this one, so
    a small child of a large parent (a benchmark driver holding a generated log) would report the
    parent's peak. Falls back to ``ru_maxrss`` where /proc is missing.
    """
    peak = status_kb("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
