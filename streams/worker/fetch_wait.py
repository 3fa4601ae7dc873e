"""How long the worker's fetches wait at the broker, raised when the broker starves it.

A broker answers a fetch as soon as records are there, or empty when `fetch_max_wait_ms` has passed. tansu 0.6
(the embedded stack's broker) scans a partition's stored batches to answer a fetch and answers empty when the
scan outlasts the wait: at the default 10 ms a partition of tens of thousands of small batches is read slowly or
not at all while its records wait (docs/operations.md has the measurements). The worker notices records waiting
past its fetch position while the agent idles, and raises the wait: a longer wait costs nothing on a Kafka
broker, which answers when records arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

# Faust's own fetch wait: a broker this slow to find records is starved beyond what a longer wait mends.
CEILING_MS = 1500
# Seconds between checks; `patience` checks in a row without progress raise the wait.
CHECK_S = 2.0


@dataclass
class FetchWaitGovernor:
    """Raise the fetch wait by `factor` after `patience` checks in a row in which the worker was starved: the agent
    idle (no batch in progress) while more records waited on the broker than it read since the last check. Never
    above `ceiling_ms`. A worker draining a backlog is busy; a live one reads more than waits.

    >>> governor = FetchWaitGovernor(wait_ms=10, patience=2)
    >>> governor.observe(records_read=500, waiting=200, busy=False)  # read 500 (since the start), 200 wait: fine
    >>> governor.observe(records_read=510, waiting=9000, busy=True)  # a batch in progress: not the broker's doing
    >>> governor.observe(records_read=520, waiting=9000, busy=False)  # idle, 10 read while 9,000 wait: once
    >>> governor.observe(records_read=520, waiting=9000, busy=False)  # twice in a row
    40
    >>> governor.observe(records_read=9520, waiting=0, busy=False)  # they arrive
    >>> governor.wait_ms
    40
    """

    wait_ms: int
    patience: int = 3
    factor: int = 4
    ceiling_ms: int = CEILING_MS
    _stuck: int = 0
    _last_read: int | None = None

    def observe(self, records_read: int, waiting: int, busy: bool) -> int | None:
        """One check: the records read so far, how many wait beyond the fetch position, and whether a batch is in
        progress. Returns the new wait when it is raised, else None."""
        if self._last_read is None:  # the first check only sets where reading stood
            self._last_read = records_read
            return None
        read, self._last_read = records_read - self._last_read, records_read
        if busy or waiting <= read:
            self._stuck = 0
            return None
        self._stuck += 1
        if self._stuck < self.patience or self.wait_ms >= self.ceiling_ms:
            return None
        self._stuck = 0
        self.wait_ms = min(self.ceiling_ms, self.wait_ms * self.factor)
        return self.wait_ms
