"""Overlapping input work with computation: the next item is made in a worker thread."""

from concurrent.futures import ThreadPoolExecutor


def read_ahead(iterator):
    """Yield the items of ``iterator`` while a worker thread already makes the next one.

    Reading or cutting volumes (numpy, file I/O) then overlaps the network
    (TensorFlow); both release the GIL. ``None`` items are not allowed (they end
    the stream).
    """
    iterator = iter(iterator)
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(next, iterator, None)
        while True:
            item = pending.result()
            if item is None:
                return
            pending = worker.submit(next, iterator, None)
            yield item
