"""How a long-running probe process uses the garbage collector.

Reference counting frees almost everything a check makes as soon as the check is done; the
cyclic collector is for the rest. Its full passes walk every tracked object not frozen, and
a running probe holds several per probe for as long as it runs (a schedule entry, the
tracker's last result, the SLA figures, a request template): at 10,000 probes a full pass
held the event loop for 100-250 ms, and CPython's default thresholds started one every
2-3 s at 1,000 checks/s, because objects of checks still in flight are promoted to the old
generation by the frequent young passes (bench/capacity.py: schedule lag p99 214 ms).

So, once start-up is done (`settle`): what exists then is frozen (out of every pass: it
lives as long as the process), and a full pass comes after `FULL_PASS_AFTER` young passes
of the middle generation instead of 10, about once every minute or two at 1,000 checks/s
rather than every few seconds. Young passes run as before, so cyclic garbage of a check is
freed as soon as always; what reached the old generation waits for the next full pass.
`unsettle` puts the collector back as it was (tests and embeddings run on).
"""

from __future__ import annotations

import gc

__all__ = ["FULL_PASS_AFTER", "settle", "unsettle"]

FULL_PASS_AFTER = 1000

_saved: list[tuple[int, int, int]] = []


def settle() -> None:
    """Collect, freeze what lives now, and make full passes rare (see the module's text)."""
    gc.collect()  # first, so no garbage is frozen
    gc.freeze()
    threshold = gc.get_threshold()
    _saved.append(threshold)
    gc.set_threshold(threshold[0], threshold[1], max(threshold[2], FULL_PASS_AFTER))


def unsettle() -> None:
    """Undo `settle`: frozen objects are collectable again, the thresholds as they were."""
    gc.unfreeze()
    if _saved:
        gc.set_threshold(*_saved.pop())
