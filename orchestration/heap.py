"""The cyclic garbage collector paused around builds of many long-lived objects.

Hamilton's imports (pandas, scipy, scikit-learn) leave a few hundred thousand objects on the heap
before any dataflow exists, and every full collection scans them all. Loading definitions creates
objects that all live on (graphs, specs), so the full collections it triggers, 0.2-0.3 s each at
5,000 nodes, free nothing.

(Freezing the heap for the length of a step, tried too, made full collections more frequent:
Python schedules them by the size of the unfrozen old generation, which freezing empties.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """A build of many objects that no collection frees (a Hamilton graph and asset specs, alive as
    long as the definitions; syntax trees, freed by reference counting) without the cyclic GC.

    Every full collection during such a build rescans the whole heap (~0.2 s at 5,000 nodes, with
    Hamilton's imports loaded) and frees nothing, and the objects built, all alive, would trigger
    one more soon after. So collection pauses, and at the end everything tracked moves straight to
    the oldest generation (`gc.freeze()` then `gc.unfreeze()`), where full collections still
    examine it: nothing is leaked, only the pointless scans are skipped. The move is left out when
    the process has frozen objects of its own, which `unfreeze` would release. Nested: a no-op."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()
