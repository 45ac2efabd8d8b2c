"""Facts about the running process that benchmarks and workers report."""

from __future__ import annotations


def peak_rss_kb() -> int:
    """Peak RSS of this process so far, in KiB: ``VmHWM`` of its own memory map.

    Not ``ru_maxrss``: Linux carries that over ``exec`` from the process that forked this one, so
    a small child of a large parent (a benchmark driver holding a generated log) would report the
    parent's peak. Falls back to ``ru_maxrss`` where /proc is missing.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
