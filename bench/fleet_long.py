#!/usr/bin/env python3
"""Fleet retention benchmark: one sensor streaming one long session, published in parts.

    python3 bench/fleet_long.py                 # 100 000 readings in 20 parts
    python3 bench/fleet_long.py --parts 40 --readings 200000
    MEND=/path/to/mend python3 bench/fleet_long.py   # another build (default target/debug/mend)

It starts its own `redis-server` on a free loopback port (AOF on), generates one capture of
one session (`mend generate`, 5 % out of band, 10 % lost, duplicates and reordering), cuts
it into parts at header frames (each part starts with its session's header, as a gateway
publishes), and for each part: publishes it, runs one `mend work --exit-when-idle
--settle 0s` (the part is settled), and prints the worker's wall time, the raw stream's
length and memory (`XLEN`, `MEMORY USAGE … SAMPLES 0`), the state hash's memory, the stored
engine state's length (`HSTRLEN`), and Redis's
`used_memory` (which grows with the output stream, about 77 bytes a row). A worker that re-reads the session from its start slows down part by part,
and its raw stream grows; one that continues from a stored state stays flat.
"""

import argparse
import os
import subprocess
import time

from fleet import Redis

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEND = os.environ.get("MEND", os.path.join(REPO, "target", "debug", "mend"))


def cobs_decode(chunk):
    out = bytearray()
    i = 0
    while i < len(chunk):
        code = chunk[i]
        if code == 0:
            return None
        out += chunk[i + 1:i + code]
        i += code
        if code < 0xFF and i < len(chunk):
            out.append(0)
    return bytes(out)


def header_offsets(data):
    """Byte offsets of header frames (postcard variant 0)."""
    offsets, start = [], 0
    while True:
        end = data.find(b"\0", start)
        if end < 0:
            return offsets
        body = cobs_decode(data[start:end])
        if body and body[0] == 0:
            offsets.append(start)
        start = end + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=int, default=20)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/mend-fleet-long")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    cap = os.path.join(a.dir, "long.mlog")
    gen = [MEND, "generate", "--seed", "1", "--count", str(a.readings), "--sensor", "1",
           "--error-rate", "0.05", "--skip-rate", "0.1", "--duplicate-rate", "0.05",
           "--reorder-rate", "0.05", "-o", cap]
    subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
    data = open(cap, "rb").read()
    heads = header_offsets(data)
    cuts = [heads[len(heads) * i // a.parts] for i in range(a.parts)] + [len(data)]
    redis = Redis(os.path.join(a.dir, f"redis-{os.getpid()}"))
    url = redis.url

    def cli(*args):
        return redis.cmd(*map(str, args)).strip()

    print(f"mend: {MEND}")
    print(" ".join(gen))
    print(f"{len(data)} bytes, {len(heads)} headers, {a.parts} parts")
    print("part  work_s  raw_entries  raw_bytes  state_bytes  engine_json  used_memory")
    try:
        for i in range(a.parts):
            part = os.path.join(a.dir, f"part{i}.mlog")
            open(part, "wb").write(data[cuts[i]:cuts[i + 1]])
            subprocess.run([MEND, "publish", "--redis", url, part], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t = time.perf_counter()
            subprocess.run([MEND, "work", "--redis", url, "--consumer", "w", "--exit-when-idle",
                            "--poll", "20ms", "--settle", "0s"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = time.perf_counter() - t
            raw = cli("XLEN", "mend:{1}:raw")
            raw_mem = cli("MEMORY", "USAGE", "mend:{1}:raw", "SAMPLES", 0) or "0"
            state_mem = cli("MEMORY", "USAGE", "mend:{1}:state", "SAMPLES", 0) or "0"
            engine = cli("HSTRLEN", "mend:{1}:state", "engine")
            used = redis.used_memory()
            print(f"{i + 1:4}  {dt:6.3f}  {raw:>11}  {raw_mem:>9}  {state_mem:>11}  {engine:>11}"
                  f"  {used:>11}")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
