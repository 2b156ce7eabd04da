"""Table writes held back until the sequences they close have been handed to the producer.

A Faust table's changelog and an output topic are written by separate sends, and a worker can be
killed between any two of them. If a closed session's deletion reached the changelog before its
sequence reached the sequences topic, the sequence would be lost for good. Sending the sequences
first and the table's writes after (in the order they were made) leaves only outcomes that a
replay of the same keys messages repairs."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

_DELETED = object()


class DeferredWrites(MutableMapping):
    """Reads see the table with the pending writes on top; `apply` makes every write to the table in
    the order it was made. (Only the last write of each key would be fewer records, but a killed
    worker could then leave a session as it was two writes ago: a deletion made after the record
    of applied offsets would replace the write made before it.) The exception is a key the table
    did not hold that ends deleted (a session opened and closed by one keys message): none of its
    writes is made. Every state a killed worker could leave then lacks the key, as the table did
    before, and the session's sequence had gone out before any write (a replay sends it again, with
    the same alert id). With shippers' batches about half of the changelog records were these."""

    def __init__(self, table: MutableMapping) -> None:
        self.table = table
        self.pending: dict = {}  # key -> its latest value
        self.writes: list[tuple] = []  # (key, value) in order

    def __getitem__(self, key):
        if key in self.pending:
            value = self.pending[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key, value) -> None:
        self.pending[key] = value
        self.writes.append((key, value))

    def __delitem__(self, key) -> None:
        if key not in self:
            raise KeyError(key)
        self.pending[key] = _DELETED
        self.writes.append((key, _DELETED))

    def get(self, key, default=None):
        # Most keys asked for are new sessions: Mapping.get would raise and catch a KeyError for each,
        # twice (here and in the Faust table).
        if key in self.pending:
            value = self.pending[key]
            return default if value is _DELETED else value
        return self.table[key] if key in self.table else default

    def __contains__(self, key) -> bool:
        if key in self.pending:
            return self.pending[key] is not _DELETED
        return key in self.table

    def __iter__(self) -> Iterator:
        for key in self.table:
            if key not in self.pending:
                yield key
        for key, value in self.pending.items():
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def apply(self) -> None:
        never_written = {key for key, value in self.pending.items() if value is _DELETED and key not in self.table}
        for key, value in self.writes:
            if key in never_written:
                continue
            if value is not _DELETED:
                self.table[key] = value
            elif key in self.table:
                del self.table[key]
        self.pending.clear()
        self.writes.clear()
