#!/usr/bin/env python3
"""mend's performance figures, in one run: the numbers the README quotes, and how to get them.

    python3 bench/run.py                 # the full set (about 5-10 minutes on 2 cores)
    python3 bench/run.py --quick         # smaller inputs, to check that everything runs

It builds `mend` in release mode, generates its inputs under --dir (default /tmp/mend-bench,
never inside the repository) and measures:

1. JSONL throughput: a 10^6-reading capture in the prototype's JSONL format (origin rates:
   5 % out of band, 10 % lost), replayed to CSV by `mend replay` and by bench/prototype.py
   (the Python prototype's algorithm). Events/s are input lines per wall-clock second.
   Goal: mend >= 100x the prototype.
2. Frame-log throughput: a 10^7-reading frame log (origin rates), replayed to a CSV file
   and to /dev/null, against the bare decode loop of host/benches/bare_decode.rs over the
   same file. Goal: the full replay within 2x of the bare decode. The three are run in
   turn, --rounds times (5), and each figure is its best round, so that the ratio compares
   runs made minutes apart at most, under the same load; the ratios of each round (its
   replay over its own bare decode) are shown too, as the spread this machine gives. Each
   round also writes as many bytes as the CSV output from memory and syncs them: the time
   the disk alone takes, below which no replay to a CSV file can go.
3. Peak RSS of `mend replay` (from wait4's rusage of that child alone) at 10^6, 10^7 and,
   when the estimate is under three minutes, 10^8 readings. Goal: flat, <= 32 MiB.
4. Bytes per framed reading of a clean capture: file size / reading frames. Goal <= 12.

Wall-clock times include process start-up, reading the file from the page cache (each
file is read once before it is timed) and, for a CSV file, mend's sync of the output to
disk before it is renamed into place; the output file is removed (untimed) before each run.
The JSONL runs of mend are the best of three; the prototype runs once. The bare decode's
time is its decode loop alone (one pass a process in section 2); mend's is the whole process.
`mend replay` decodes, and writes its output, on threads of their own, so its CPU time
(user + system, from wait4) is shown next to its wall-clock time; the bare decode is
single-threaded. Every command that was timed is printed at the end, exactly as it was run.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024


class Bench:
    def __init__(self, args):
        self.args = args
        self.commands = []  # (label, command line)
        self.rows = []  # (section, figure, value, goal)
        self.mend = None
        self.gen_s = {}
        self.last_cpu = None  # user + system seconds of the last timed child
        self.bare = None
        self.version = "?"

    # --- running things -------------------------------------------------------------------

    def run(self, label, argv, stdout=None, env=None, record=True):
        """Runs argv; returns (seconds, peak RSS in KiB of that child, its stdout text)."""
        shown = shlex.join(argv)
        if stdout is not None and stdout != os.devnull:
            shown += " > " + shlex.quote(stdout)
        if env:
            shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shown
        if record:
            self.commands.append((label, shown))
        print(f"  $ {shown}", file=sys.stderr, flush=True)
        out_file = open(stdout, "w") if stdout is not None else None
        full_env = dict(os.environ, **(env or {}))
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out_file if out_file else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=REPO,
        )
        captured, err = proc.communicate() if not out_file else (None, proc.stderr.read())
        # communicate() has reaped the child when stdout is piped; otherwise wait4 here.
        if out_file:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out_file.close()
            rss = usage.ru_maxrss
            self.last_cpu = usage.ru_utime + usage.ru_stime
        else:
            rss = None
            self.last_cpu = None
        secs = time.perf_counter() - start
        if proc.returncode != 0:
            sys.stderr.write(err.decode(errors="replace") if isinstance(err, bytes) else str(err))
            raise SystemExit(f"failed ({proc.returncode}): {shown}")
        text = captured.decode(errors="replace") if captured else ""
        return secs, rss, text, (err.decode(errors="replace") if isinstance(err, bytes) else "")

    def timed(self, label, argv, stdout=None):
        """Runs argv with its output to a file, measuring time and the child's peak RSS."""
        return self.run(label, argv, stdout=stdout or os.devnull)[:2]

    def timed_best(self, label, argv, stdout=None, runs=3, fresh=None):
        """The fastest of `runs` runs (as for the bare decode), with that run's CPU time and
        the highest peak RSS of all of them. `fresh` is an output file removed (untimed)
        before each run, so that every run writes a new file rather than replacing the last
        run's, which would add the file system's work of freeing the old one."""
        best = None
        for i in range(runs):
            if i:
                self.commands.pop()  # record the command once
            if fresh and os.path.exists(fresh):
                os.remove(fresh)
            secs, rss = self.timed(label, argv, stdout)
            if best is None or secs < best[0]:
                best = (secs, self.last_cpu, rss if best is None else max(rss, best[2]))
            else:
                best = (best[0], best[1], max(rss, best[2]))
        self.last_cpu = best[1]
        return best[0], best[2]

    def warm(self, path):
        """Reads a file once so that timed runs all start from the page cache."""
        with open(path, "rb") as f:
            while f.read(8 * MIB):
                pass

    def row(self, section, figure, value, goal="", met=None, full_size=False):
        """One figure. `full_size` goals (speed ratios, growth) only mean something at the
        full input sizes: with --quick, start-up and page-cache effects dominate, so they
        are reported but not judged."""
        if met is not None and full_size and self.args.quick:
            goal += ": not judged at this size"
        elif met is not None:
            goal += ": met" if met else ": NOT met"
        self.rows.append((section, figure, value, goal))
        print(f"  {figure}: {value}" + (f"   [{goal}]" if goal else ""), file=sys.stderr)

    def path(self, name):
        return os.path.join(self.args.dir, name)

    # --- steps ----------------------------------------------------------------------------

    def build(self):
        """Builds mend and the bare-decode bench, and copies both binaries under --dir, so
        that a rebuild in the checkout during the run cannot change what is measured."""
        print("building mend (release) and the bare_decode bench", file=sys.stderr)
        self.run("build", ["cargo", "build", "--release", "-p", "mend", "--bin", "mend"])
        _, _, out, _ = self.run("build", ["cargo", "bench", "-p", "mend", "--bench",
                                          "bare_decode", "--no-run", "--message-format=json"])
        bare = None
        for line in out.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                    and msg.get("target", {}).get("name") == "bare_decode"):
                bare = msg["executable"]
        built = os.path.join(REPO, "target", "release", "mend")
        if not os.path.exists(built) or not bare:
            raise SystemExit("the build did not produce mend and bare_decode")
        bindir = self.path("bin")
        os.makedirs(bindir, exist_ok=True)
        self.mend = os.path.join(bindir, "mend")
        self.bare = os.path.join(bindir, "bare_decode")
        shutil.copy2(built, self.mend)
        shutil.copy2(bare, self.bare)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "core", "host"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        self.version = head + (" + uncommitted changes in core/ or host/" if dirty else "")
        self.commands.append(("binaries", f"cp target/release/mend {self.mend}; "
                              f"cp {os.path.relpath(bare, REPO)} {self.bare}"))

    def generate(self, label, out, count, *extra):
        if os.path.exists(out) and self.args.reuse:
            print(f"  (reusing {out})", file=sys.stderr)
            self.commands.append((label, shlex.join(
                [self.mend, "generate", "--seed", "1", "--count", str(count), *extra, "-o", out])))
            return None
        secs, _ = self.timed(label, [self.mend, "generate", "--seed", "1", "--count", str(count),
                                     *extra, "-o", out])
        return secs

    def bare_decode(self, label, log, passes=3):
        secs, _, out, _ = self.run(
            label, [self.bare, "--bench"],
            env={"MEND_BENCH_LOG": log, "MEND_BENCH_PASSES": str(passes)})
        line = next(l for l in out.splitlines() if "readings_per_s=" in l)
        return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}

    def disk_floor(self, size):
        """Seconds to write `size` bytes to a new file beside the outputs and sync it, in 1 MiB
        writes from memory: what the disk alone costs a CSV output of that size."""
        path = self.path("disk-floor.tmp")
        block = (b"1,1,0,2026-01-01T00:00:00.000Z,52.5,measured,,good,\n" * 20_000)[:MIB]
        start = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            left = size
            while left:
                left -= os.write(fd, block[:min(left, MIB)])
            os.fsync(fd)
        finally:
            os.close(fd)
        secs = time.perf_counter() - start
        os.remove(path)
        return secs

    def jsonl(self):
        n = self.args.jsonl_count
        print(f"\n1. JSONL throughput ({n} readings)", file=sys.stderr)
        log = self.path(f"origin-{n}.jsonl")
        self.generate("1. generate JSONL", log, n, "--error-rate", "0.05", "--skip-rate", "0.1",
                      "--format", "jsonl")
        with open(log, "rb") as f:
            events = sum(1 for _ in f)
        size = os.path.getsize(log)
        self.warm(log)
        mend_s, mend_rss = self.timed_best(
            "1. mend replay JSONL",
            [self.mend, "replay", log, "--format", "csv", "-o", self.path("origin.csv"),
             "--quiet"], fresh=self.path("origin.csv"))
        mend_cpu = self.last_cpu
        # The prototype appends to its input and to a reprocessed-events file: give it a copy
        # and a fresh state, as for a first run.
        copy = self.path("prototype-input.jsonl")
        shutil.copyfile(log, copy)
        state = copy + ".reprocessed.jsonl"
        if os.path.exists(state):
            os.remove(state)
        self.warm(copy)
        proto_s, proto_rss = self.timed(
            "1. prototype replay JSONL",
            [sys.executable, os.path.join(REPO, "bench", "prototype.py"), copy],
            stdout=self.path("prototype.out"))
        s = "1. JSONL replay"
        self.row(s, "input events (lines)", f"{events:,}")
        self.row(s, "JSONL bytes per event", f"{size / events:.1f} B")
        self.row(s, "mend replay -> CSV (best of 3)", f"{events / mend_s:,.0f} events/s ({mend_s:.2f} s, "
                 f"CPU {mend_cpu:.2f} s, peak RSS {mend_rss / 1024:.1f} MiB)")
        self.row(s, "prototype.py (1 run)", f"{events / proto_s:,.0f} events/s ({proto_s:.2f} s, "
                 f"peak RSS {proto_rss / 1024:.0f} MiB)")
        self.row(s, "speed-up", f"{proto_s / mend_s:.0f}x", "goal >= 100x",
                 met=proto_s / mend_s >= 100, full_size=True)
        # The prototype as written re-reads its reprocessed file for every event: quadratic,
        # so only small prefixes of the log are feasible.
        for k in self.args.as_written:
            part = self.path(f"prototype-as-written-{k}.jsonl")
            with open(log) as src, open(part, "w") as dst:
                for _, line in zip(range(k), src):
                    dst.write(line)
            if os.path.exists(part + ".reprocessed.jsonl"):
                os.remove(part + ".reprocessed.jsonl")
            secs, _ = self.timed(
                f"1. prototype as written, {k} events",
                [sys.executable, os.path.join(REPO, "bench", "prototype.py"), "--as-written",
                 part], stdout=self.path(f"prototype-as-written-{k}.out"))
            self.row(s, f"prototype.py --as-written, {k:,} events",
                     f"{k / secs:,.0f} events/s ({secs:.2f} s)", "quadratic")

    def frames(self):
        n = self.args.frames_count
        rounds = self.args.rounds
        print(f"\n2. Frame-log throughput ({n} readings, {rounds} rounds)", file=sys.stderr)
        log = self.path(f"origin-{n}.mlog")
        gen_s = self.generate("2. generate frame log", log, n, "--error-rate", "0.05",
                              "--skip-rate", "0.1")
        self.warm(log)
        csv_out = self.path("origin-frames.csv")
        csv_argv = [self.mend, "replay", log, "--format", "csv", "-o", csv_out, "--quiet"]
        null_argv = [self.mend, "replay", log, "--format", "csv", "-o", "/dev/null", "--quiet"]
        # This machine's speed drifts over minutes, so the three are measured in turn, round
        # after round, and each figure is its best round: a ratio of two figures taken minutes
        # apart would measure the drift as much as the replay.
        bare_s, csv, null, floor_s = None, None, None, None
        ratios = []  # (CSV file, /dev/null) over the bare decode of the same round
        for r in range(rounds):
            if r:
                del self.commands[-3:]  # record each command once
            bare = self.bare_decode("2. bare decode", log, passes=1)
            round_bare = float(bare["best_s"])
            bare_s = min(bare_s or float("inf"), round_bare)
            if os.path.exists(csv_out):
                os.remove(csv_out)
            csv_secs, rss = self.timed("2. mend replay -> CSV file", csv_argv)
            if csv is None or csv_secs < csv[0]:
                csv = (csv_secs, self.last_cpu, rss)
            written = os.path.getsize(csv_out)
            floor_s = min(floor_s or float("inf"), self.disk_floor(written))
            secs, rss = self.timed("2. mend replay -> /dev/null", null_argv)
            if null is None or secs < null[0]:
                null = (secs, self.last_cpu, rss)
            ratios.append((csv_secs / round_bare, secs / round_bare))
        readings = int(bare["readings"])
        (csv_s, csv_cpu, _), (null_s, null_cpu, _) = csv, null
        s = "2. frame-log replay"
        self.row(s, "file", f"{int(bare['bytes']) / MIB:,.1f} MiB, {readings:,} reading frames")
        self.row(s, f"bare decode (best of {rounds})", f"{readings / bare_s:,.0f} readings/s "
                 f"({bare_s:.2f} s)")
        self.row(s, f"mend replay -> CSV file (best of {rounds})",
                 f"{readings / csv_s:,.0f} readings/s ({csv_s:.2f} s, CPU {csv_cpu:.2f} s)",
                 f"{csv_s / bare_s:.2f}x bare decode; goal <= 2x",
                 met=csv_s / bare_s <= 2, full_size=True)
        self.row(s, f"writing as many bytes ({written / 1e6:,.0f} MB) and syncing them, "
                 f"nothing else (best of {rounds})",
                 f"{floor_s:.2f} s: the disk's floor for the CSV file",
                 f"{floor_s / bare_s:.2f}x bare decode")
        self.row(s, f"mend replay -o /dev/null (best of {rounds})",
                 f"{readings / null_s:,.0f} readings/s ({null_s:.2f} s, CPU {null_cpu:.2f} s)",
                 f"{null_s / bare_s:.2f}x bare decode; goal <= 2x",
                 met=null_s / bare_s <= 2, full_size=True)

        def spread(xs):
            return f"{min(xs):.2f}x / {statistics.median(xs):.2f}x / {max(xs):.2f}x"

        self.row(s, "each round's ratio, CSV file (min / median / max)",
                 spread([c for c, _ in ratios]))
        self.row(s, "each round's ratio, /dev/null (min / median / max)",
                 spread([d for _, d in ratios]))
        self.gen_s[n] = gen_s

    def memory(self):
        print("\n3. Peak RSS of mend replay", file=sys.stderr)
        s = "3. peak RSS"
        sizes = sorted({self.args.rss_small, self.args.frames_count})
        results = {}
        for n in sizes:
            log = self.path(f"origin-{n}.mlog")
            gen_s = self.generate(f"3. generate {n}", log, n, "--error-rate", "0.05",
                                  "--skip-rate", "0.1")
            self.warm(log)
            secs, rss = self.timed(f"3. mend replay {n}",
                                   [self.mend, "replay", log, "-o", "/dev/null", "--quiet"])
            results[n] = (secs, rss, gen_s)
        big = self.args.rss_big
        last = max(sizes)
        est = results[last][0] * big / last
        gen_est = (results[last][2] or self.gen_s.get(last) or results[last][0]) * big / last
        if self.args.skip_big:
            note = "skipped (--skip-big)"
        elif est > self.args.big_limit:
            note = f"skipped: estimated {est:.0f} s > {self.args.big_limit:.0f} s"
        else:
            note = None
            log = self.path(f"origin-{big}.mlog")
            print(f"  {big:,} run: replay estimated at {est:.0f} s, generation at {gen_est:.0f} s",
                  file=sys.stderr)
            self.generate(f"3. generate {big}", log, big, "--error-rate", "0.05",
                          "--skip-rate", "0.1")
            secs, rss = self.timed(f"3. mend replay {big}",
                                   [self.mend, "replay", log, "-o", "/dev/null", "--quiet"])
            results[big] = (secs, rss, None)
        for n, (secs, rss, _) in sorted(results.items()):
            self.row(s, f"{n:,} readings", f"{rss / 1024:.1f} MiB ({secs:.1f} s)",
                     "goal <= 32 MiB", met=rss <= 32 * 1024)
        peaks = [rss for _, rss, _ in results.values()]
        self.row(s, "growth, smallest to largest", f"{(max(peaks) - min(peaks)) / 1024:.1f} MiB",
                 "goal: flat (< 1 MiB)", met=max(peaks) - min(peaks) < 1024, full_size=True)
        if note:
            self.row(s, f"{big:,} readings", note)

    def size(self):
        n = self.args.clean_count
        print(f"\n4. Bytes per framed reading (clean capture, {n} readings)", file=sys.stderr)
        log = self.path(f"clean-{n}.mlog")
        self.generate("4. generate clean frame log", log, n)
        bare = self.bare_decode("4. count frames", log)
        s = "4. size"
        per = float(bare["bytes_per_reading"])
        self.row(s, "file / reading frames", f"{per:.2f} B", "goal <= 12", met=per <= 12)
        self.row(s, "reading frames alone", f"{float(bare['bytes_per_reading_frame']):.2f} B")
        self.row(s, "other frames (headers, stats)", f"{int(bare['other_frames']):,} of "
                 f"{int(bare['frames']):,}")

    # --- report ---------------------------------------------------------------------------

    def report(self):
        width = max(len(f) for _, f, _, _ in self.rows)
        vwidth = max(len(v) for _, _, v, _ in self.rows)
        print()
        print(f"mend benchmarks — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
              f"{os.cpu_count()} CPUs, {platform_line()}, Python {sys.version.split()[0]}")
        print(f"mend built from {self.version}")
        section = None
        for sec, fig, val, goal in self.rows:
            if sec != section:
                print(f"\n{sec}")
                section = sec
            print(f"  {fig:<{width}}  {val:<{vwidth}}  {goal}".rstrip())
        print("\ncommands")
        for label, cmd in self.commands:
            if label != "build":
                print(f"  [{label}] {cmd}")


def platform_line():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return sys.platform


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="/tmp/mend-bench", help="where inputs and outputs go")
    p.add_argument("--quick", action="store_true", help="small inputs, to check the driver")
    p.add_argument("--reuse", action="store_true",
                   help="reuse inputs left in --dir by an earlier run instead of regenerating")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds of the frame-log figures, each the bare decode and both replays")
    p.add_argument("--skip-big", action="store_true", help="never run the 10^8 RSS check")
    p.add_argument("--big-limit", type=float, default=180.0,
                   help="run the 10^8 RSS check only when estimated under this many seconds")
    args = p.parse_args()
    if args.quick:
        args.jsonl_count, args.frames_count = 20_000, 200_000
        args.rss_small, args.rss_big, args.clean_count = 20_000, 2_000_000, 100_000
        args.as_written = [500, 1_000]
    else:
        args.jsonl_count, args.frames_count = 1_000_000, 10_000_000
        args.rss_small, args.rss_big, args.clean_count = 1_000_000, 100_000_000, 1_000_000
        args.as_written = [2_000, 4_000]
    if os.path.abspath(args.dir).startswith(REPO + os.sep):
        raise SystemExit("--dir must be outside the repository")
    os.makedirs(args.dir, exist_ok=True)

    b = Bench(args)
    b.build()
    b.jsonl()
    b.frames()
    b.memory()
    b.size()
    b.report()


if __name__ == "__main__":
    main()
