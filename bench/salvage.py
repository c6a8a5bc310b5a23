#!/usr/bin/env python3
"""What `mend replay` keeps of damaged frame logs, against the truth the generator wrote.

    python3 bench/salvage.py            # builds mend (release) and prints the figures

1. Captures of 50 000 readings with frames torn short (their end and delimiter lost) and
   bits flipped: readings measured, each compared with the generator's truth (a measured
   row that differs from it, or has no reading there, counts as invented).
2. Bytes drawn to look like frames (zeros, code bytes, reading tags, anything) after one
   header: how many readings a replay takes from 20 MB of them, none of which is one, and
   how long it takes.

Inputs go to --dir (default /tmp/mend-salvage), never into the repository.
"""

import argparse
import csv
import os
import random
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mend_binary():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "mend"], cwd=REPO, check=True)
    return os.path.join(REPO, "target", "release", "mend")


def measured_against_truth(mend, d, seed, damage):
    log, truth_csv, out = (os.path.join(d, f"{seed}.{x}") for x in ("mlog", "truth.csv", "csv"))
    subprocess.run([mend, "generate", "--seed", str(seed), "--count", "50000", *damage,
                    "-o", log, "--truth", truth_csv], check=True, capture_output=True)
    subprocess.run([mend, "replay", log, "-o", out, "-q"], check=True)
    with open(truth_csv) as f:
        truth = {(r["sensor"], r["session"], r["seq"]): (r["time"], float(r["celsius"]))
                 for r in csv.DictReader(f)}
    measured = invented = 0
    with open(out) as f:
        for r in csv.DictReader(f):
            if r["origin"] != "measured":
                continue
            measured += 1
            if truth.get((r["sensor"], r["session"], r["seq"])) != (r["time"], float(r["celsius"])):
                invented += 1
    return len(truth), measured, invented


def garbage(mend, d):
    head = os.path.join(d, "one.mlog")
    subprocess.run([mend, "generate", "--seed", "9", "--count", "1", "-o", head],
                   check=True, capture_output=True)
    rng = random.Random(7)
    alphabet = [0, 1, 2, 3, 7, 8, 0x55, 0xFF]
    noise = bytes(rng.choice(alphabet) if rng.random() < 8 / 9 else rng.randrange(256)
                  for _ in range(20_000_000))
    log = os.path.join(d, "garbage.mlog")
    with open(head, "rb") as f, open(log, "wb") as g:
        g.write(f.read())
        g.write(noise)
    out, dlq = os.path.join(d, "garbage.csv"), os.path.join(d, "garbage.dlq")
    start = time.perf_counter()
    subprocess.run([mend, "replay", log, "--input-format", "mlog", "-o", out, "--dlq", dlq,
                    "-q"], check=True)
    secs = time.perf_counter() - start
    with open(out) as f:
        taken = sum(1 for r in csv.DictReader(f) if r["origin"] == "measured") - 1
    with open(dlq) as f:
        damaged = sum(1 for _ in f)
    return taken, damaged, secs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="/tmp/mend-salvage")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    mend = mend_binary()
    print("| capture (50 000 readings, `mend generate --seed S ...`) | measured | invented |")
    print("|---|---|---|")
    for seed, damage in [(5, ["--truncate-rate", "0.3"]),
                         (2, ["--truncate-rate", "0.1", "--corrupt-rate", "0.1",
                              "--skip-rate", "0.05", "--duplicate-rate", "0.05",
                              "--reorder-rate", "0.05"]),
                         (8, ["--truncate-rate", "0.3", "--corrupt-rate", "0.3"])]:
        n, measured, invented = measured_against_truth(mend, args.dir, seed, damage)
        print(f"| seed {seed}, `{' '.join(damage)}` | {measured:,} of {n:,} | {invented} |")
    taken, damaged, secs = garbage(mend, args.dir)
    print(f"\n20 MB drawn to look like frames, after one header: {damaged:,} dead letters, "
          f"{taken} reading(s) taken from them, {secs:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
