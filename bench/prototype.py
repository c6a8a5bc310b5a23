#!/usr/bin/env python3
"""The original Python prototype's replay algorithm, re-implemented as the baseline that
`mend replay` is benchmarked against (see bench/run.py).

It does what the prototype did, flaws included, because the point is to measure that
algorithm, not a better one:

- the log is JSONL, one event per line, parsed with `json` line by line; a bad line raises
  and aborts the whole replay;
- every event at or after `--from` goes into a `heapq` min-heap as a `(timestamp, event)`
  tuple, so two events with the same timestamp make Python compare two dicts and crash
  with a TypeError;
- the range to check for gaps runs from the heap's first slot to its *last* slot, which is
  not the maximum of a heap, so trailing gaps are missed; gaps at the edges of the window are
  never looked for; and every missing second is filled, however long the downtime;
- each synthetic event gets an unseeded `random.gauss(52.5, 1)` value, is labelled
  `"status": "normal"`, and is appended to the *input* log (one `open(..., "a")` per event);
- events are deduplicated on the timestamp alone, against a set of already reprocessed
  timestamps; every processed event is appended to the reprocessed-events file (again one
  `open` per event), so a second replay of the same log gives different output;
- values are "clipped" to 47 below 0 °C and to 58 above 100 °C, contradicting the 50–55 °C
  band, and marked `"corrected"`;
- the ordered events are written as JSON into a `StringIO`, which is then read back, parsed
  again and printed.

One deliberate difference: the original re-read the whole reprocessed-events file for every
event (quadratic in the log length); here that set is loaded once and kept in memory, which
is the prototype at its best (about 30 k events/s). `--as-written` restores the re-read, for
small logs only. The original used `numpy.random.normal`; `random.gauss` draws from the same
distribution without needing numpy.

Usage:
    prototype.py LOG [--from UNIX_SECONDS] [--reprocessed FILE] [--as-written] > OUT

LOG is modified (synthetic events are appended to it): pass a copy.
"""

import argparse
import heapq
import json
import os
import random
import resource
import sys
import time
from io import StringIO

LOW_CLIP = 47
HIGH_CLIP = 58


def append_line(path, event):
    """The prototype's logger: open, append one JSON line, close."""
    with open(path, "a") as f:
        f.write(json.dumps(event) + "\n")


def load_reprocessed(path):
    """Timestamps already reprocessed by an earlier run (or earlier in this one)."""
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {json.loads(line)["timestamp"] for line in f}


def clip(temperature):
    """The prototype's clipping: only absurd values change, and not into the band."""
    if temperature < 0:
        return True, LOW_CLIP
    if temperature > 100:
        return True, HIGH_CLIP
    return False, temperature


def synthetic(timestamp, log_path):
    """An unseeded, "normal"-labelled filler, appended to the input log."""
    event = {
        "timestamp": timestamp,
        "event_type": "TEMPERATURE_SENSOR",
        "temperature": random.gauss(52.5, 1),
        "status": "normal",
        "synthetic": True,
    }
    append_line(log_path, event)
    return event


class Processor:
    """The per-event step: dedup on the timestamp, clip, append to the reprocessed file."""

    def __init__(self, reprocessed_path, as_written):
        self.path = reprocessed_path
        self.as_written = as_written
        self.done = None if as_written else load_reprocessed(reprocessed_path)

    def process(self, event):
        done = load_reprocessed(self.path) if self.as_written else self.done
        ts = event["timestamp"]
        if ts in done:
            return event
        changed, event["temperature"] = clip(event["temperature"])
        if changed:
            event["status"] = "corrected"
        append_line(self.path, event)
        if not self.as_written:
            done.add(ts)
        return event


def replay(log_path, from_ts, processor, out):
    seen = set()
    heap = []
    read = 0
    with open(log_path) as f:
        for line in f:
            event = json.loads(line)
            read += 1
            ts = event.get("timestamp", 0)
            if ts >= from_ts:
                seen.add(ts)
                heapq.heappush(heap, (ts, event))

    filled = 0
    if heap:
        first = heap[0][0]
        last = heap[-1][0]  # the last slot of a heap, not its maximum
        missing = set(range(first, last + 1)) - seen
        for ts in sorted(missing):
            heapq.heappush(heap, (ts, synthetic(ts, log_path)))
            filled += 1

    buffer = StringIO()
    while heap:
        _, event = heapq.heappop(heap)
        buffer.write(json.dumps(processor.process(event)) + "\n")

    buffer.seek(0)
    written = 0
    for line in buffer:
        out.write(repr(json.loads(line)) + "\n")
        written += 1
    buffer.close()
    return read, filled, written


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("log", help="JSONL event log (it is appended to: pass a copy)")
    p.add_argument("--from", dest="from_ts", type=int, default=0,
                   help="replay events at or after this unix timestamp (seconds)")
    p.add_argument("--reprocessed", default=None,
                   help="the reprocessed-events file (default: LOG.reprocessed.jsonl)")
    p.add_argument("--as-written", action="store_true",
                   help="re-read the reprocessed file for every event (quadratic)")
    args = p.parse_args()
    reprocessed = args.reprocessed or args.log + ".reprocessed.jsonl"

    start = time.perf_counter()
    out = sys.stdout
    read, filled, written = replay(args.log, args.from_ts,
                                   Processor(reprocessed, args.as_written), out)
    out.flush()
    secs = time.perf_counter() - start
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"prototype read={read} synthetic={filled} written={written} seconds={secs:.3f} "
        f"events_per_s={read / secs if secs > 0 else 0:.0f} peak_rss_kib={rss_kib}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
