"""Duplicate and gap detection by event identity (agent, boot, seq), in bounded memory.

A duplicate is dropped only when this process has *surely* accepted the same
identity before; anything it cannot be sure about is written again, which is a
harmless overwrite in InfluxDB (point keys derive from identity). So the memory
bounds can cost a rewrite, never an event.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class _Stream:
    base: int
    """First seq of the tracked range; below it nothing is known."""
    low: int
    """Every seq in [base, low] has been seen."""
    top: int
    """Highest seq seen."""
    above: set[int] = field(default_factory=set)
    """Seen seqs above ``low`` (out of order arrivals leave holes)."""


@dataclass
class Verdict:
    duplicate: bool
    gap: int = 0
    """Sequence numbers skipped between the previous highest and this one."""


class SeqTracker:
    """Per (agent, boot) watermark plus the out-of-order seqs above it; LRU over streams."""

    def __init__(self, max_streams: int = 10_000, max_holes: int = 100_000) -> None:
        self.max_streams = max_streams
        self.max_holes = max_holes
        self._streams: OrderedDict[tuple[str, str], _Stream] = OrderedDict()
        self.resets = 0
        """Streams forgotten because too many seqs arrived out of order (memory bound)."""

    def __len__(self) -> int:
        return len(self._streams)

    def stream(self, agent: str, boot: str, seq: int) -> _Stream:
        """The stream of one agent boot, marked recently used; created at ``seq``."""
        key = (agent, boot)
        found = self._streams.get(key)
        if found is None:
            found = _Stream(base=seq, low=seq - 1, top=seq - 1)
            self._streams[key] = found
            if len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(key)
        return found

    def check(self, stream: _Stream, seq: int) -> Verdict:
        """Record ``seq`` in ``stream`` and say whether it was a duplicate or skipped ahead."""
        low = stream.low
        if seq == low + 1:
            stream.low = low = seq
            above = stream.above
            if above:
                while low + 1 in above:
                    low += 1
                    above.discard(low)
                stream.low = low
            if seq > stream.top:
                stream.top = seq
            return _FRESH
        if stream.base <= seq <= low or seq in stream.above:
            return _DUPLICATE
        if seq < stream.base:
            return _FRESH  # before anything we know of: write again rather than risk a loss
        gap = seq - stream.top - 1 if seq > stream.top else 0
        stream.above.add(seq)
        if seq > stream.top:
            stream.top = seq
        if len(stream.above) > self.max_holes:
            self.resets += 1
            stream.base = stream.top + 1
            stream.low = stream.top
            stream.above.clear()
        return Verdict(False, gap) if gap else _FRESH


_FRESH = Verdict(False)
_DUPLICATE = Verdict(True)
