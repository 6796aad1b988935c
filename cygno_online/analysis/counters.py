"""Per-run event counters, shared by the daemon pipeline and the offline
runner so both write the same ``counters`` block into the run summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RunCounters:
    events: int = 0
    processed: int = 0
    dropped: int = 0
    decode_errors: int = 0
    analyzer_errors: int = 0
    by_event_id: Counter = field(default_factory=Counter)
    dropped_by_event_id: Counter = field(default_factory=Counter)
    #: reader problems and bytes skipped while resynchronising; only known
    #: when the analysis reads the files itself (None: not reported)
    format_problems: int | None = None
    skipped_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events_seen": self.events,
            "events_processed": self.processed,
            "events_dropped": self.dropped,
            "decode_errors": self.decode_errors,
            "analyzer_errors": self.analyzer_errors,
            "events_by_id": {str(k): v for k, v in sorted(self.by_event_id.items())},
            "dropped_by_id": {str(k): v for k, v in sorted(self.dropped_by_event_id.items())},
        }
        if self.format_problems is not None:
            out["format_problems"] = self.format_problems
        if self.skipped_bytes is not None:
            out["skipped_bytes"] = self.skipped_bytes
        return out
