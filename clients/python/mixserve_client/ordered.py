"""Many translations with a bounded window in flight, answered in input order.

The engine behind Client.translate_many and Client.translate_file: at most `window` items are
between being read and being given back, so at most `window` calls are in flight and memory
stays bounded whatever the input's length (a slow item holds back the ones after it). A call
refused with RESOURCE_EXHAUSTED or UNAVAILABLE (a full queue, a variant or server briefly out of
service) is retried after a jittered exponential backoff, as long as the item's deadline and
its attempts allow; every other failure, and the last retryable one, becomes a
TranslationError for that item, raised or given in its place. No item is ever dropped or
answered with an empty string standing for a failure.
"""

import collections
import heapq
import itertools
import queue
import random
import time

import grpc

from mixserve_client.errors import TranslationError

RETRYABLE = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})


class BatchStats:
    """What one translate_many / translate_file run did, updated while it runs.

    items: results given back so far; calls: RPCs started; retries: calls repeated after a
    retryable refusal; failed: items given back (or raised) as a TranslationError;
    retried_codes: {status name: retries} (e.g. {"RESOURCE_EXHAUSTED": 12}).
    """

    def __init__(self):
        self.items = 0
        self.calls = 0
        self.retries = 0
        self.failed = 0
        self.retried_codes = collections.Counter()

    def __repr__(self):
        return (f"BatchStats(items={self.items}, calls={self.calls}, retries={self.retries}, "
                f"failed={self.failed}, retried_codes={dict(self.retried_codes)})")


class Ready:
    """An input item whose result is known without a call (a blank line, an undecodable one)."""

    __slots__ = ("result",)

    def __init__(self, result):
        self.result = result


class _Item:
    __slots__ = ("index", "request", "deadline", "attempts", "future", "result")

    def __init__(self, index):
        self.index = index
        self.request = None
        self.deadline = None
        self.attempts = 0
        self.future = None
        self.result = None


class Policy:
    """How run() calls and retries: see Client.translate_many for the meaning of each field."""

    def __init__(self, window, timeout, max_attempts, backoff, max_backoff, on_error, what):
        if int(window) < 1:
            raise ValueError(f"window must be at least 1, not {window!r}")
        if on_error not in ("raise", "return"):
            raise ValueError(f'on_error must be "raise" or "return", not {on_error!r}')
        if max_attempts is not None and int(max_attempts) < 1:
            raise ValueError(f"max_attempts must be at least 1 (or None), not {max_attempts!r}")
        if max_attempts is None and timeout is None:
            raise ValueError("max_attempts=None retries until the deadline: give a timeout")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive (or None), not {timeout!r}")
        self.window = int(window)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_error = on_error
        self.what = what

    def delay(self, attempts):
        """The jittered wait before attempt `attempts + 1`: half to all of an exponential step."""
        step = min(self.max_backoff, self.backoff * (2 ** (attempts - 1)))
        return step * random.uniform(0.5, 1.0)


def run(call, items, policy, stats=None):
    """Yields the result of every input item in input order.

    call: a grpc unary-unary multicallable (its .future() is used); items: an iterable of
    request messages or Ready(result); a result is the call's response or a TranslationError
    (raised instead of yielded when policy.on_error is "raise", once every earlier item has
    been yielded). Stopping the iteration early cancels the calls still in flight.
    """
    stats = stats if stats is not None else BatchStats()
    done = queue.SimpleQueue()  # (item, future) from gRPC's threads
    pending = collections.deque()  # read, not yet given back, in input order
    retries = []  # heap of (when, sequence, item)
    sequence = itertools.count()
    source = enumerate(items)
    exhausted = False

    def start(item):
        item.attempts += 1
        stats.calls += 1
        timeout = None
        if item.deadline is not None:
            timeout = max(item.deadline - time.monotonic(), 0.001)
        item.future = call.future(item.request, timeout=timeout)
        item.future.add_done_callback(lambda f, it=item: done.put((it, f)))

    def fail(item, code, details):
        item.result = TranslationError(item.index, code, details, item.attempts, policy.what)

    def finish(item, future):
        if future is not item.future or item.result is not None:
            return  # a stale completion (cancelled on the way out)
        code = future.code()
        if code == grpc.StatusCode.OK:
            item.result = future.result()
            return
        details = future.details() or ""
        if code in RETRYABLE and (policy.max_attempts is None
                                  or item.attempts < policy.max_attempts):
            when = time.monotonic() + policy.delay(item.attempts)
            if item.deadline is None or when < item.deadline:
                stats.retries += 1
                stats.retried_codes[code.name] += 1
                item.future = None
                heapq.heappush(retries, (when, next(sequence), item))
                return
        fail(item, code, details)

    try:
        while True:
            while not exhausted and len(pending) < policy.window:
                try:
                    index, entry = next(source)
                except StopIteration:
                    exhausted = True
                    break
                item = _Item(index)
                if isinstance(entry, Ready):
                    item.result = entry.result
                else:
                    item.request = entry
                    if policy.timeout is not None:
                        item.deadline = time.monotonic() + policy.timeout
                    start(item)
                pending.append(item)
            if pending and pending[0].result is not None:
                item = pending.popleft()
                result = item.result
                if isinstance(result, TranslationError):
                    stats.failed += 1
                    if policy.on_error == "raise":
                        raise result
                stats.items += 1
                yield result
                continue
            if not pending:
                return
            wait = None
            if retries:
                wait = max(retries[0][0] - time.monotonic(), 0.0)
            try:
                finish(*done.get(timeout=wait))
                while True:  # everything else already done, without waiting
                    finish(*done.get_nowait())
            except queue.Empty:
                pass
            now = time.monotonic()
            while retries and retries[0][0] <= now:
                start(heapq.heappop(retries)[2])
    finally:
        for item in pending:
            if item.future is not None and not item.future.done():
                item.future.cancel()
