#!/usr/bin/env python3
"""The fleet benchmark: mend on Redis Streams against a single-process `mend replay`.

    python3 bench/fleet.py            # 1 000 sensors x 10 000 readings (a few minutes)
    python3 bench/fleet.py --quick    # 50 sensors x 2 000 readings, to check that it runs

It builds `mend` in release mode, starts its own `redis-server` on a free loopback port
(AOF on, fsync every second: Redis's default durability with AOF), generates one capture per
sensor under --dir (default /tmp/mend-fleet-bench; origin rates: 5 % out of band, 10 % lost,
plus duplicates and reordering), concatenates them, and measures:

1. `mend replay` of the concatenated capture to a CSV file: the single-process reference.
2. `mend publish --end`: readings/s into Redis, and Redis memory per buffered reading
   (used_memory after publishing, minus before, over the readings published).
3. The repair by 1 worker, then (after FLUSHALL and a new publish) by 2 workers at once:
   readings/s of the repair (`mend work --exit-when-idle` until every sensor is settled),
   end to end (publish + repair), per worker, and as a fraction of `mend replay`'s speed.
   Goal: one worker >= 1/4 of `mend replay`.
4. A check that the exports of a few sensors equal the replay's rows.

Every command that was timed is printed at the end, exactly as it was run.
"""

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEND = os.path.join(REPO, "target", "release", "mend")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    def __init__(self, dir_):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        os.makedirs(dir_, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--appendonly", "yes", "--save", "", "--dir", dir_],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                if self.cmd("PING").strip() == "PONG":
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def cmd(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True,
                              capture_output=True, text=True).stdout

    def used_memory(self):
        for line in self.cmd("INFO", "memory").splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise SystemExit("no used_memory in INFO")

    def cpu(self):
        """User + system CPU seconds of the server so far."""
        info = dict(l.split(":", 1) for l in self.cmd("INFO", "cpu").splitlines() if ":" in l)
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sensors", type=int)
    ap.add_argument("--readings", type=int)
    ap.add_argument("--dir", default="/tmp/mend-fleet-bench")
    args = ap.parse_args()
    sensors = args.sensors or (50 if args.quick else 1000)
    readings = args.readings or (2000 if args.quick else 10000)
    total = sensors * readings
    commands = []
    rows = []

    def run(label, argv, stdout=None):
        shown = shlex.join(argv) + (f" > {shlex.quote(stdout)}" if stdout else "")
        commands.append((label, shown))
        print(f"  $ {shown}", file=sys.stderr, flush=True)
        out = open(stdout, "w") if stdout else subprocess.DEVNULL
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=out, stderr=subprocess.PIPE, cwd=args.dir)
        return time.perf_counter() - t

    def figure(name, value):
        rows.append((name, value))
        print(f"  {name}: {value}", file=sys.stderr, flush=True)

    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "mend"], cwd=REPO,
                   check=True)
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    print(f"generating {sensors} captures of {readings} readings", file=sys.stderr)
    with open(os.path.join(args.dir, "all.mlog"), "wb") as all_:
        for s in range(1, sensors + 1):
            name = os.path.join(args.dir, "one.mlog")
            subprocess.run([MEND, "generate", "--seed", str(s), "--count", str(readings),
                            "--sensor", str(s), "--error-rate", "0.05", "--skip-rate", "0.1",
                            "--duplicate-rate", "0.01", "--reorder-rate", "0.01",
                            "-o", name], check=True, stderr=subprocess.DEVNULL)
            with open(name, "rb") as f:
                all_.write(f.read())
    size = os.path.getsize(os.path.join(args.dir, "all.mlog"))
    figure("capture", f"{sensors} sensors x {readings} readings, {size / 2**20:.1f} MiB")

    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
    replay_s = run("replay", [MEND, "replay", "all.mlog", "-o", "replay.csv", "-q"])
    replay_rate = total / replay_s
    figure("mend replay (1 process)", f"{replay_rate / 1e6:.2f} M readings/s ({replay_s:.2f} s)")

    redis = Redis(os.path.join(args.dir, "redis"))
    try:
        for workers in (1, 2):
            redis.cmd("FLUSHALL")
            before = redis.used_memory()
            pub_s = run(f"publish ({workers})",
                        [MEND, "publish", "--redis", redis.url, "--end", "all.mlog"])
            after = redis.used_memory()
            if workers == 1:
                figure("publish", f"{total / pub_s / 1e6:.2f} M readings/s ({pub_s:.2f} s)")
                figure("Redis memory per buffered reading",
                       f"{(after - before) / total:.1f} bytes ({(after - before) / 2**20:.0f} MiB)")
            argvs = [[MEND, "work", "--redis", redis.url, "--consumer", f"w{i}",
                      "--exit-when-idle", "--poll", "10ms", "--lease", "30s"]
                     for i in range(1, workers + 1)]
            for i, a in enumerate(argvs):
                commands.append((f"work ({workers} workers)", shlex.join(a)))
            load = os.getloadavg()[0]
            redis_cpu = redis.cpu()
            t = time.perf_counter()
            procs = [subprocess.Popen(a, cwd=args.dir, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True) for a in argvs]
            reports = []
            worker_cpu = 0.0
            for p in procs:
                err = p.stderr.read()
                _, status, usage = os.wait4(p.pid, 0)
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"worker failed: {err}")
                worker_cpu += usage.ru_utime + usage.ru_stime
                reports.append(err.strip().splitlines()[-1])
            work_s = time.perf_counter() - t
            redis_cpu = redis.cpu() - redis_cpu
            rate = total / work_s
            figure(f"repair, {workers} worker(s)",
                   f"{rate / 1e6:.2f} M readings/s ({work_s:.2f} s), {rate / workers / 1e6:.2f} M/s per worker, "
                   f"{rate / replay_rate:.2f}x mend replay")
            figure(f"CPU during the repair, {workers} worker(s)",
                   f"workers {worker_cpu:.1f} s, redis-server {redis_cpu:.1f} s, in {work_s:.1f} s "
                   f"on {os.cpu_count()} cores (load average before: {load:.1f})")
            figure(f"end to end (publish + repair), {workers} worker(s)",
                   f"{total / (pub_s + work_s) / 1e6:.2f} M readings/s ({pub_s + work_s:.2f} s)")
            for r in reports:
                print(f"    {r}", file=sys.stderr)
            if workers == 1:
                figure("Redis memory after the repair (raw + output rows)",
                       f"{redis.used_memory() / 2**20:.0f} MiB")
        # The exports of a few sensors equal the replay's rows.
        with open(os.path.join(args.dir, "replay.csv")) as f:
            lines = f.read().splitlines()
        for s in sorted({1, sensors // 2, sensors}):
            run("export", [MEND, "export", "--redis", redis.url, "--sensor", str(s), "-o",
                           f"e{s}.csv"])
            with open(os.path.join(args.dir, f"e{s}.csv")) as f:
                got = f.read().splitlines()
            want = [lines[0]] + [l for l in lines[1:] if l.startswith(f"{s},")]
            if got != want:
                raise SystemExit(f"sensor {s}: the export differs from the replay")
        figure("exports checked against mend replay", "equal")
    finally:
        redis.stop()

    print("\n| figure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\nCommands:")
    for label, c in commands:
        print(f"  [{label}] {c}")


if __name__ == "__main__":
    main()
