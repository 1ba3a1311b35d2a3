#!/usr/bin/python3
"""bench.py - trackpixel's benchmarks, side by side in one run (issue 6).

    make bench                  (full run; rewrites BENCHMARKS.md)
    make bench BENCH_QUICK=1    (short run for CI; writes bench/quick.md)
    bench/bench.py --help

Throughput and latency, with the same wrk load for every row:

  1. nginx empty_gif                  the ceiling for a pixel over HTTP here
  2. lighttpd, a static 60-byte file
  3. lighttpd + bench/bare_pixel      the ceiling for any FastCGI pixel
  4. lighttpd + trackpixel            signing on, journal on, fast stand-in
  5. Apache mod_fcgid + trackpixel    the same
  6. as 4, the stand-in answers after 500 ms
  7. as 4, the stand-in stopped       the cluster is down
  8. Apache mod_fcgid + bare_pixel    to tell mod_fcgid's share in 5
  9. as 4, the stand-in never answers a hung cluster (timeouts)

Rows 2 to 9 use the SHIPPED configurations (lighttpd/50-trackpixel.conf,
apache/trackpixel.conf), rendered by tests/webserver.py as the tests do; the
only change is the number of worker processes, the same for rows 3 to 9.
Rows 3 and 8 run bench/bare_pixel through the very same configurations, in
place of trackpixel.  For each row, the CPU time each group of processes
used (web server, FastCGI processes, stand-in, wrk) per request.

Per-hit cost: CPU instructions per hit (valgrind --tool=callgrind; two runs
of W and W+N hits through tests/fcgi_client.py, so start-up, the first
connection and shutdown cancel out), split by phase with inclusive costs
(parse_callgrind); and one worker's resident memory after 1,000, 10,000
and 100,000 hits, and after a backlog built while the cluster was down.

The Elasticsearch stand-in is bench/es_fast (answers at once, or after
--delay-ms, verifies nothing): tests/es_standin.py verifies every signature
and would be the bottleneck.

Everything listens on 127.0.0.1 only; everything started is stopped at the
end, also on failure or Ctrl-C.  These are benchmarks, not tests: the exit
status is 0 when the run completed, whatever the numbers.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("TP_SRCDIR") or os.path.join(HERE, ".."))
BUILDDIR = os.path.abspath(os.environ.get("TP_BUILDDIR") or SRCDIR)
os.environ["TP_SRCDIR"] = SRCDIR
os.environ["TP_BUILDDIR"] = BUILDDIR
sys.path.insert(0, os.path.join(SRCDIR, "tests"))

import tplib          # noqa: E402
import webserver      # noqa: E402
import fcgi_client    # noqa: E402

TRACKPIXEL = os.path.join(BUILDDIR, "src", "trackpixel")
BARE_PIXEL = os.path.join(BUILDDIR, "bench", "bare_pixel")
ES_FAST = os.path.join(BUILDDIR, "bench", "es_fast")
LIB_FLOOR = os.path.join(BUILDDIR, "bench", "lib_floor")
REPORT_LUA = os.path.join(SRCDIR, "bench", "report.lua")

# One request for every row: a pixel with a campaign's query string and the
# headers a browser sends for an <img>.
QUERY = "utm_source=newsletter&utm_medium=email&utm_campaign=winter-sale&uid=4f3c2a9e&v=3"
HEADERS = [
    ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                   "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
    ("Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Referer", "https://www.example.com/blog/2025/11/winter-sale?ref=home"),
]

# Signing as in production: long-term keys (AWS's documentation example
# keys) and a region.  No session token: Apache's mod_fcgid cannot pass one
# (apache/README.md), and rows 4 and 5 must sign the same way.
KEYS = {"AWS_ACCESS_KEY_ID": tplib.AWS_KEYS["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": tplib.AWS_KEYS["AWS_SECRET_ACCESS_KEY"]}
REGION = tplib.AWS_KEYS["AWS_REGION"]

SLOW_MS = 500
HANG_MS = 60000        # row 9: longer than any timeout of the shipped configuration


def log(msg):
    print("bench: " + msg, flush=True)


class Drift(webserver.ConfigDrift):
    pass


def edit_line(text, pattern, line, what):
    """The one line matching pattern (group 1: its indentation) becomes line."""
    found = list(re.finditer(pattern, text, re.M))
    if len(found) != 1:
        raise Drift("%s: %d lines match %r in the shipped configuration, expected 1"
                    % (what, len(found), pattern))
    m = found[0]
    return text[:m.start()] + m.group(1) + line + text[m.end():]


# ------------------------------------------------------------- processes

class Stopper:
    """What the run started, stopped in reverse order by close(), each step
    whatever happened to the others."""

    def __init__(self):
        self.steps = []

    def push(self, what, fn):
        self.steps.append((what, fn))
        return fn

    def cancel(self, fn):
        self.steps = [(w, f) for w, f in self.steps if f is not fn]

    def run(self, fn):
        """Run one step now (and forget it)."""
        self.cancel(fn)
        fn()

    def close(self):
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:          # noqa: BLE001 - keep stopping the rest
                log("stopping %s: %s" % (what, e))


def threads_of(pid):
    """'tid:state:wchan ...' of pid's threads, for a log line."""
    out = []
    try:
        for tid in sorted(os.listdir("/proc/%d/task" % pid)):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%d/task/%s/wchan" % (pid, tid)) as f:
                out.append("%s:%s:%s" % (tid, state, f.read().strip() or "-"))
    except OSError:
        pass
    return " ".join(out) or "gone"


def stop_popen(p, sig=signal.SIGTERM, timeout=20):
    """Signal our child p (and, as it leads its own session, its group: nginx's
    workers, valgrind's), wait, then SIGKILL whatever of that group is left."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except OSError:
            p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) did not stop within %d s on signal %d; threads: %s: killed"
                % (os.path.basename(str(p.args[0])), p.pid, timeout, sig, threads_of(p.pid)))
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    if p.poll() is None:
        p.kill()
        p.wait()


def reap_children(names=tuple(webserver.REAPABLE) + ("bare_pixel",)):
    """Reap the zombies of processes the web servers started and left to us
    (we are a child subreaper, see tests/webserver.py): by name, never a
    child that a Popen object of ours owns."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = webserver.proc_stat(int(name))
        if st and st[2] == me and st[1] == "Z" and st[0] in names:
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass


def stop_server(srv):
    """Stop a tests/webserver.py server (graceful, then whatever is left is
    killed) and reap what it leaves."""
    try:
        srv.__exit__(None, None, None)
    finally:
        reap_children()


def wait_port(port, timeout=15.0, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("%s did not listen on %d" % (what, port))
        time.sleep(0.05)


class EsFast:
    """bench/es_fast: the Elasticsearch stand-in that answers at once."""

    def __init__(self, stopper, workdir, delay_ms=0, port=0):
        self.stopper = stopper
        self.delay_ms = delay_ms
        self.port = port
        self.err_path = os.path.join(workdir, "es_fast.%d.log" % time.monotonic_ns())
        self.proc = None
        self._stop = None

    def start(self):
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [ES_FAST, "--port", str(self.port), "--delay-ms", str(self.delay_ms)],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self._stop = self.stopper.push("es_fast", lambda: stop_popen(self.proc))
        line = self.proc.stdout.readline().decode()
        m = re.match(r"port (\d+)", line)
        if not m:
            raise RuntimeError("es_fast did not start: %r" % line)
        self.port = int(m.group(1))
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stats(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", "/_bench/stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def docs(self):
        s = self.stats()
        return s["creates"] + s["bulk_docs"]

    def stop(self):
        if self._stop:
            self.stopper.run(self._stop)
            self._stop = None


class Nginx:
    """nginx with its own configuration in a temporary directory."""

    def __init__(self, stopper, workdir, port):
        self.stopper = stopper
        self.dir = os.path.join(workdir, "nginx")
        self.port = port
        self.proc = None
        self._stop = None

    def start(self):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        conf = os.path.join(self.dir, "nginx.conf")
        temps = "".join("    %s_temp_path %s;\n" % (t, os.path.join(self.dir, "tmp", t))
                        for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(conf, "w") as f:
            f.write("daemon off;\nmaster_process on;\nworker_processes auto;\n"
                    "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
                    "events { worker_connections 1024; }\n"
                    "http {\n    access_log off;\n%s"
                    "    server {\n        listen 127.0.0.1:%d;\n"
                    "        location = /pixel { empty_gif; }\n"
                    "        location / { return 404; }\n    }\n}\n"
                    % (self.dir, self.dir, temps, self.port))
        with open(os.path.join(self.dir, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf,
                                          "-e", os.path.join(self.dir, "error.log")],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True)
        self._stop = self.stopper.push("nginx", lambda: stop_popen(self.proc, signal.SIGQUIT))
        wait_port(self.port, proc=self.proc, what="nginx")
        return self

    def stop(self):
        if self._stop:
            self.stopper.run(self._stop)
            self._stop = None


class BenchLighttpd(webserver.Lighttpd):
    """The shipped lighttpd configuration (tests/webserver.py renders it),
    with min-procs and max-procs set to the benchmark's worker count, and
    program (the run's copy of trackpixel, or bench/bare_pixel for row 3)
    copied in as bin/trackpixel, so that it is found and stopped as
    trackpixel is; a 60-byte file in the document root for row 2."""

    def __init__(self, workers, program=None, **kw):
        super().__init__(**kw)
        self.workers = workers
        self.program = program

    def procs(self):
        return self.workers

    def render(self):
        super().render()
        with open(self.rendered_path) as f:
            text = f.read()
        if self.program:
            bindir = os.path.join(self.dir, "bin")
            os.makedirs(bindir, exist_ok=True)
            os.chmod(bindir, 0o755)
            copy = os.path.join(bindir, "trackpixel")
            shutil.copy2(self.program, copy)
            text = webserver.replace_all(text, '"%s"' % webserver.BINARY, '"%s"' % copy,
                                         "bin-path")
        for key in ("min-procs", "max-procs"):
            pattern = r'^([ \t]*)"%s"[ \t]*=>[ \t]*\d+,[ \t]*$' % key
            if key == "max-procs" or re.search(pattern, text, re.M):
                text = edit_line(text, pattern, '"%s" => %d,' % (key, self.workers),
                                 "lighttpd " + key)
        with open(self.rendered_path, "w") as f:
            f.write(text)
        with open(os.path.join(self.dir, "htdocs", "pixel.bmp"), "wb") as f:
            f.write(tplib.PIXEL)
        os.chmod(os.path.join(self.dir, "htdocs", "pixel.bmp"), 0o644)

    def program_pids(self):
        return self.trackpixel_pids()


class BenchApache(webserver.Apache):
    """The shipped Apache configuration, FcgidMaxProcessesPerClass set to the
    benchmark's worker count."""

    def __init__(self, workers, program_dir=None, **kw):
        super().__init__(**kw)
        self.workers = workers
        self.program_dir = program_dir

    def render(self):
        super().render()
        with open(self.rendered_path) as f:
            text = f.read()
        if self.program_dir:
            # The shipped file serves one file named trackpixel: row 8 puts a
            # copy of bare_pixel under that name in a directory of its own.
            text = webserver.replace_all(text, os.path.dirname(webserver.BINARY),
                                         self.program_dir, "program directory")
        text = edit_line(text, r"^([ \t]*)FcgidMaxProcessesPerClass[ \t]+\d+[ \t]*$",
                         "FcgidMaxProcessesPerClass %d" % self.workers,
                         "apache FcgidMaxProcessesPerClass")
        with open(self.rendered_path, "w") as f:
            f.write(text)

    def program_pids(self):
        return self.trackpixel_pids()


def shipped_setting(path, pattern):
    with open(path) as f:
        m = re.search(pattern, f.read(), re.M)
    return m.group(1) if m else "?"


# ------------------------------------------------------------------ load

TICK = os.sysconf("SC_CLK_TCK")


def descendants(root):
    """{pid: comm} of root and its live descendants."""
    procs = webserver.all_procs()
    children = {}
    for pid, (_, state, ppid) in procs.items():
        if state != "Z":
            children.setdefault(ppid, []).append(pid)
    out, stack = {}, [root]
    while stack:
        pid = stack.pop()
        if pid in procs and procs[pid][1] != "Z":
            out[pid] = procs[pid][0]
            stack += children.get(pid, [])
    return out


def machine_ticks():
    """(busy, steal) clock ticks of all cores so far, from /proc/stat: busy
    is user + nice + system + irq + softirq + steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


def cpu_ticks(pid):
    """(user, system) clock ticks of pid, all its threads; None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(rest[11]), int(rest[12])


class CpuMeter:
    """CPU time (user + system) that groups of processes use during the
    measured run: groups is {label: function returning {pid: comm}}.
    Processes that end during the run lose what they used since the last
    look (Apache's replaced processes): the figure is then a lower bound."""

    def __init__(self, groups):
        self.groups = groups
        self.first = {}
        self.children0 = None

    def start(self):
        self.first = {}
        for label, fn in self.groups.items():
            for pid in fn():
                t = cpu_ticks(pid)
                if t:
                    self.first[pid] = (label, t)
        self.children0 = os.times()
        self.machine0 = machine_ticks()

    def stop(self):
        used = {label: [0, 0] for label in self.groups}
        seen = set()
        for label, fn in self.groups.items():
            for pid in fn():
                t = cpu_ticks(pid)
                if not t or pid in seen:
                    continue
                seen.add(pid)
                t0 = self.first.get(pid, (label, (0, 0)))[1]
                used[label][0] += t[0] - t0[0]
                used[label][1] += t[1] - t0[1]
        t1 = os.times()
        # wrk is our child: its CPU shows in our children's times once waited for.
        used["wrk"] = [(t1.children_user - self.children0.children_user) * TICK,
                       (t1.children_system - self.children0.children_system) * TICK]
        out = {k: (u / TICK, s / TICK) for k, (u, s) in used.items()}
        busy, steal = machine_ticks()
        # Everything the machine's cores did besides our groups (other
        # processes, interrupts, and a hypervisor's steal): a busy
        # neighbour shows here.
        ours = sum(u + s for u, s in out.values())
        out["machine"] = ((busy - self.machine0[0]) / TICK, (steal - self.machine0[1]) / TICK,
                          ours)
        return out


class Wrk:
    def __init__(self, threads, conns, duration, warmup, logdir):
        self.threads = threads
        self.conns = conns
        self.duration = duration
        self.warmup = warmup
        self.logdir = logdir

    def argv(self, url, seconds):
        argv = ["wrk", "-t%d" % self.threads, "-c%d" % self.conns, "-d%ds" % seconds,
                "--timeout", "10s", "--latency", "-s", REPORT_LUA]
        for name, value in HEADERS:
            argv += ["-H", "%s: %s" % (name, value)]
        return argv + [url]

    def run(self, url, seconds, tag):
        argv = self.argv(url, seconds)
        p = subprocess.run(argv, capture_output=True, timeout=seconds + 60)
        out = p.stdout.decode("utf-8", "replace")
        with open(os.path.join(self.logdir, "wrk-%s.log" % tag), "w") as f:
            f.write(" ".join(argv) + "\n" + out + p.stderr.decode("utf-8", "replace"))
        m = re.search(r"^BENCH-JSON (\{.*\})$", out, re.M)
        if p.returncode != 0 or not m:
            raise RuntimeError("wrk failed (%d): %s" % (p.returncode, (out + p.stderr.decode())[-600:]))
        r = json.loads(m.group(1))
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
        return r

    def measure(self, url, tag, warmup=None, cpu=None, procs=None):
        """One measured run (after a warm-up).  procs: a function giving the
        FastCGI processes' pids, counted at the start and at the end."""
        w = self.warmup if warmup is None else warmup
        warm = self.run(url, w, tag + "-warmup") if w > 0 else None
        first = set(procs()) if procs else set()
        if cpu:
            cpu.start()
        r = self.run(url, self.duration, tag)
        if cpu:
            r["cpu"] = cpu.stop()
        if procs:
            last = set(procs())
            r["workers"] = (len(first), len(last), len(first - last))
        r["warmup_requests"] = warm["requests"] if warm else 0
        return r


def check_pixel(port, path, expect_len):
    """One GET before the load, so that no row measures a 404."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers=dict(HEADERS))
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200 or len(body) != expect_len:
        raise RuntimeError("GET %s on port %d: %d with %d bytes, expected 200 with %d"
                           % (path, port, resp.status, len(body), expect_len))


def spool_bytes(spool):
    total = files = 0
    for root, _, names in os.walk(spool):
        for n in names:
            try:
                total += os.path.getsize(os.path.join(root, n))
                files += 1
            except OSError:
                pass
    return total, files


def settle(fn, quiet=1.0, timeout=20.0):
    """Poll fn() until it stays the same for quiet seconds (bounded)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        v = fn()
        if v != last:
            last, since = v, time.monotonic()
        if time.monotonic() - since >= quiet or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


# ------------------------------------------------------------- the rows

def tp_settings(es_url):
    return {"TRACKPIXEL_ES_URL": es_url, "AWS_REGION": REGION}


def rows_http(opts, stopper, work, wrk, results):
    path = "/pixel?" + QUERY
    if opts.want(1):
        log("1: nginx empty_gif")
        ng = Nginx(stopper, work, tplib.free_port()).start()
        try:
            check_pixel(ng.port, path, 43)
            cpu = CpuMeter({"web server": lambda: descendants(ng.proc.pid)})
            results[1] = wrk.measure("http://127.0.0.1:%d%s" % (ng.port, path), "1-nginx",
                                     cpu=cpu)
        finally:
            ng.stop()
    if opts.want(2) or opts.want(3):
        srv = BenchLighttpd(opts.workers, program=BARE_PIXEL,
                            workdir=os.path.join(work, "lighttpd-bare"))
        stop = stopper.push("lighttpd (bare)", lambda: stop_server(srv))
        srv.start()
        cpu = CpuMeter({
            "web server": lambda: {p: c for p, c in srv.pids().items() if c != "trackpixel"},
            "FastCGI processes": lambda: {p: c for p, c in srv.pids().items()
                                          if c == "trackpixel"}})
        try:
            if opts.want(2):
                log("2: lighttpd, static 60-byte file")
                check_pixel(srv.port, "/pixel.bmp?" + QUERY, 60)
                results[2] = wrk.measure(srv.url("/pixel.bmp?" + QUERY), "2-lighttpd-static",
                                         cpu=cpu)
            if opts.want(3):
                log("3: lighttpd + bare FastCGI pixel (%d processes)" % opts.workers)
                check_pixel(srv.port, path, 60)
                results[3] = wrk.measure(srv.url(path), "3-lighttpd-bare", cpu=cpu,
                                         procs=srv.program_pids)
        finally:
            stopper.run(stop)


def run_trackpixel_row(n, opts, stopper, work, wrk, results, server="lighttpd",
                       delay_ms=0, cluster_down=False):
    es = EsFast(stopper, work, delay_ms=delay_ms).start()
    name = {4: "lighttpd-tp", 5: "apache-tp", 6: "lighttpd-tp-slow", 7: "lighttpd-tp-down",
            9: "lighttpd-tp-hung"}[n]
    kw = dict(workdir=os.path.join(work, name), settings=tp_settings(es.url), secrets=KEYS)
    srv = (BenchApache(opts.workers, program_dir=os.path.dirname(TRACKPIXEL), **kw)
           if server == "apache" else BenchLighttpd(opts.workers, program=TRACKPIXEL, **kw))
    stop = stopper.push(name, lambda: stop_server(srv))
    try:
        srv.start()
        path = "/pixel?" + QUERY
        check_pixel(srv.port, path, 60)
        warm_first = 0
        if server == "apache":
            warm_first = spawn_apache(opts, wrk, srv, path, "%d-%s" % (n, name))
        # Rows 6 and 9 too: the warm-up takes the workers' start and their
        # first posts (each worker's first hit waits up to 4 x
        # TRACKPIXEL_SLOW_MS for a slow cluster before it leaves posting to
        # its deliverer), as it takes the start of rows 3 to 5.
        warmup = None
        if cluster_down:
            # Connections to the cluster are open; then it goes away.
            wrk.run(srv.url(path), max(opts.warmup, 1), "%d-%s-warmup" % (n, name))
            es.stop()
            warmup = 0
        es_before = es.stats() if not cluster_down else None
        docs_before = es_before["creates"] + es_before["bulk_docs"] if es_before else 0
        groups = {
            "web server": lambda: {p: c for p, c in srv.pids().items() if c != "trackpixel"},
            "FastCGI processes": lambda: {p: c for p, c in srv.pids().items()
                                          if c == "trackpixel"}}
        if not cluster_down:
            groups["stand-in"] = lambda: descendants(es.proc.pid)
        r = wrk.measure(srv.url(path), "%d-%s" % (n, name), warmup=warmup, cpu=CpuMeter(groups),
                        procs=srv.program_pids)
        r["warmup_requests"] += warm_first
        if cluster_down:
            r["spool_bytes"], r["spool_files"] = spool_bytes(srv.spool)
        elif not delay_ms:
            r["docs"] = settle(es.docs) - docs_before
            st = es.stats()
            for k in ("signed", "requests", "bulk_docs", "bulks", "creates"):
                r["es_" + k] = st[k] - es_before[k]
        else:
            r["docs_during"] = es.docs() - docs_before
        results[n] = r
    finally:
        stopper.run(stop)
        es.stop()


def spawn_apache(opts, wrk, srv, path, tag):
    """mod_fcgid starts processes as the load asks for them, a few a second
    (FcgidSpawnScore): load it until all are there (bounded).  Returns the
    requests this took."""
    deadline = time.monotonic() + max(3 * opts.warmup, 6)
    done = 0
    while True:
        done += wrk.run(srv.url(path), max(opts.warmup, 1), tag + "-spawn")["requests"]
        if len(srv.program_pids()) >= opts.workers or time.monotonic() > deadline:
            return done


def row_apache_bare(opts, stopper, work, wrk, results):
    d = os.path.join(work, "apache-bare")
    bindir = os.path.join(d, "bin")
    os.makedirs(bindir)
    os.chmod(d, 0o755)
    os.chmod(bindir, 0o755)
    shutil.copy2(BARE_PIXEL, os.path.join(bindir, "trackpixel"))
    srv = BenchApache(opts.workers, program_dir=bindir, workdir=os.path.join(d, "server"))
    stop = stopper.push("apache (bare)", lambda: stop_server(srv))
    try:
        srv.start()
        path = "/pixel?" + QUERY
        check_pixel(srv.port, path, 60)
        spawned = spawn_apache(opts, wrk, srv, path, "8-apache-bare")
        cpu = CpuMeter({
            "web server": lambda: {p: c for p, c in srv.pids().items() if c != "trackpixel"},
            "FastCGI processes": lambda: {p: c for p, c in srv.pids().items()
                                          if c == "trackpixel"}})
        r = wrk.measure(srv.url(path), "8-apache-bare", cpu=cpu, procs=srv.program_pids)
        r["warmup_requests"] += spawned
        results[8] = r
    finally:
        stopper.run(stop)


def ratio_repeats(opts, stopper, work, wrk, results):
    """Rows 3 and 4 again, opts.repeats more times each, alternating, both
    servers up at once (the idle one costs nothing): on a shared machine a
    single ratio moves with whatever else runs, the median of several much
    less.  Appends to results[3]["repeats"] and results[4]["repeats"]."""
    es = EsFast(stopper, work).start()
    bare = BenchLighttpd(opts.workers, program=BARE_PIXEL,
                         workdir=os.path.join(work, "lighttpd-bare-again"))
    tp = BenchLighttpd(opts.workers, program=TRACKPIXEL,
                       workdir=os.path.join(work, "lighttpd-tp-again"),
                       settings=tp_settings(es.url), secrets=KEYS)
    stops = [stopper.push("lighttpd (bare, again)", lambda: stop_server(bare)),
             stopper.push("lighttpd (trackpixel, again)", lambda: stop_server(tp))]
    path = "/pixel?" + QUERY
    try:
        bare.start()
        tp.start()
        for srv in (bare, tp):
            check_pixel(srv.port, path, 60)
        for i in range(opts.repeats):
            for n, srv in ((3, bare), (4, tp)):
                r = wrk.measure(srv.url(path), "%d-again-%d" % (n, i + 1))
                results[n].setdefault("repeats", []).append(r["rps"])
    finally:
        for stop in reversed(stops):
            stopper.run(stop)
        es.stop()


def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def ratios_43(results):
    """[4/3 of each pair]: the main rows, then the repeats."""
    r3, r4 = results[3], results[4]
    return [r4["rps"] / r3["rps"]] + [b / a for a, b in zip(r3.get("repeats", []),
                                                          r4.get("repeats", []))]


def rows_trackpixel(opts, stopper, work, wrk, results):
    if opts.want(4):
        log("4: lighttpd + trackpixel, fast stand-in")
        run_trackpixel_row(4, opts, stopper, work, wrk, results)
    if opts.want(5):
        log("5: Apache mod_fcgid + trackpixel, fast stand-in")
        run_trackpixel_row(5, opts, stopper, work, wrk, results, server="apache")
    if opts.want(8):
        log("8: Apache mod_fcgid + bare FastCGI pixel (for comparison with 5)")
        row_apache_bare(opts, stopper, work, wrk, results)
    if opts.want(6):
        log("6: lighttpd + trackpixel, stand-in answering after %d ms" % SLOW_MS)
        run_trackpixel_row(6, opts, stopper, work, wrk, results, delay_ms=SLOW_MS)
    if opts.want(7):
        log("7: lighttpd + trackpixel, stand-in stopped")
        run_trackpixel_row(7, opts, stopper, work, wrk, results, cluster_down=True)
    if opts.want(9):
        log("9: lighttpd + trackpixel, stand-in accepts and never answers")
        run_trackpixel_row(9, opts, stopper, work, wrk, results, delay_ms=HANG_MS)


# ------------------------------------------------------ one worker alone

def worker_env(es_url, spool):
    """The environment the shipped lighttpd configuration gives trackpixel."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "TRACKPIXEL_ES_URL": es_url, "TRACKPIXEL_ES_INDEX": "events",
           "TRACKPIXEL_AWS_SERVICE": "es", "AWS_REGION": REGION,
           "TRACKPIXEL_CONNECT_TIMEOUT_MS": "2000", "TRACKPIXEL_TIMEOUT_MS": "5000",
           "TRACKPIXEL_SPOOL_DIR": spool, "TRACKPIXEL_SHUTDOWN_MS": "3000",
           "TRACKPIXEL_STAGE": "prod"}
    env.update(KEYS)
    return env


def fcgi_params(port):
    """The CGI variables lighttpd gives trackpixel for the benchmark's request."""
    p = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "lighttpd/1.4",
         "SERVER_NAME": "127.0.0.1", "SERVER_ADDR": "127.0.0.1", "SERVER_PORT": str(port),
         "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET", "REQUEST_SCHEME": "http",
         "SCRIPT_NAME": "/pixel", "REQUEST_URI": "/pixel?" + QUERY, "QUERY_STRING": QUERY,
         "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "51234", "DOCUMENT_ROOT": "/var/www/html",
         "CONTENT_LENGTH": "0", "HTTP_HOST": "127.0.0.1:%d" % port}
    for name, value in HEADERS:
        p["HTTP_" + name.upper().replace("-", "_")] = value
    return p


class LoneWorker:
    """One trackpixel on a loopback socket handed over as its stdin (as
    spawn-fcgi, lighttpd and mod_fcgid do), optionally under valgrind."""

    def __init__(self, stopper, workdir, env, prefix=()):
        self.stopper = stopper
        self.dir = workdir
        self.env = env
        self.prefix = list(prefix)
        self.proc = None
        self.port = None
        self._stop = None
        self.params = None
        self.client = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        with open(os.path.join(self.dir, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(self.prefix + [TRACKPIXEL], stdin=sock.fileno(),
                                         stdout=subprocess.DEVNULL, stderr=err, env=self.env,
                                         cwd=self.dir, start_new_session=True)
        sock.close()
        self._stop = self.stopper.push("trackpixel", lambda: stop_popen(self.proc, timeout=120))
        self.params = fcgi_params(80)
        return self

    def hits(self, n):
        """n GETs of the pixel, one after another, each on a new connection
        (as lighttpd and mod_fcgid connect once per request)."""
        for _ in range(n):
            status, _, body = fcgi_client.request(self.port, self.params, timeout=120)
            if status != 200 or body != tplib.PIXEL:
                raise RuntimeError("the worker answered %d with %d bytes" % (status, len(body)))

    def rss_kib(self):
        return mem_kib(self.proc.pid)

    def stop(self):
        """SIGTERM and wait (under valgrind the exit writes the profile).

        A SIGTERM that lands after the accept loop's last look at its stop
        flag and before accept() blocks is not seen until a request comes;
        valgrind, which delivers signals when a thread enters a system call,
        makes that window wide.  So if the worker is still there after a
        moment, it gets one more request (one hit, in both callgrind runs:
        it cancels out): once that is answered the loop sees the flag."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            for _ in range(10):
                try:
                    self.proc.wait(5)
                    break
                except subprocess.TimeoutExpired:
                    log("trackpixel %d still waiting in accept() after SIGTERM: one more "
                        "request wakes it" % self.proc.pid)
                    try:
                        fcgi_client.request(self.port, self.params, timeout=5)
                    except (OSError, AssertionError):
                        pass
        if self._stop:
            self.stopper.run(self._stop)     # killed only if still there
            self._stop = None
        return self.proc.returncode


def callgrind_run(opts, stopper, work, es, hits, tag):
    d = os.path.join(work, "callgrind-%s" % tag)
    out = os.path.join(d, "callgrind.out")
    os.makedirs(d, exist_ok=True)
    w = LoneWorker(stopper, d, worker_env(es.url, os.path.join(d, "spool")),
                   prefix=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                           "--quiet"]).start()
    deadline = time.monotonic() + 120
    while True:                       # valgrind takes a moment to start
        try:
            w.hits(1)
            break
        except OSError:
            if time.monotonic() > deadline or w.proc.poll() is not None:
                raise
            time.sleep(0.2)
    w.hits(hits - 1)
    w.stop()
    # callgrind_annotate's view, kept with the logs (--keep).
    p = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99", out],
                       capture_output=True, timeout=120)
    with open(os.path.join(d, "annotate.txt"), "wb") as f:
        f.write(p.stdout)
    return parse_callgrind(out)


def parse_callgrind(path):
    """{'TOTAL': n, function: inclusive Ir, 'caller>callee': Ir of those
    calls} from a callgrind output file.

    inclusive(f) = f's own cost + the cost of every call f makes to another
    function, which is what callgrind_annotate --inclusive=yes adds up.  But
    callgrind_annotate keeps one entry per (source file, function), and gcc's
    DWARF 5 line tables name a file both as "src/x.c" and "/abs/src/x.c", so
    it shows one function as two partial entries; here each function is one
    entry, whatever its file names.  A function's recursive calls to itself
    are not added (callgrind names deeper levels f'2, f'3: separate functions,
    so their cost is counted once)."""
    names = {}
    own, calls, edges = {}, {}, {}
    total = None
    fn = cfn = None
    in_call = False

    def name(v):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", v)
        if not m:
            return v
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names[m.group(1)]

    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                ir = int(parts[1]) if len(parts) > 1 else 0
                if in_call:
                    if cfn != fn:
                        calls[fn] = calls.get(fn, 0) + ir
                        edges[(fn, cfn)] = edges.get((fn, cfn), 0) + ir
                    in_call = False
                else:
                    own[fn] = own.get(fn, 0) + ir
            elif line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                cfn = name(line[4:].strip())
            elif line.startswith("calls="):
                in_call = True
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if total is None:
        raise RuntimeError("no totals in %s" % path)
    costs = {k: own.get(k, 0) + calls.get(k, 0) for k in set(own) | set(calls)}
    costs["TOTAL"] = total
    for (caller, callee), v in edges.items():
        costs["%s>%s" % (caller, callee)] = v
    return costs


# Which functions make up each phase: (name, [(sign, key)], what).  A key
# is a function (its inclusive cost) or "caller>callee" (the cost of those
# calls only).  journal_hit is a static function that -O2 inlines into
# tp_app_respond: its own lines (building the entry, the lock) are then in
# "other"; when it is a symbol of its own, it is used instead.  Delivery
# covers both ways a document leaves: tp_es_create (the loop posts the hit
# itself) and deliver_batch (the deliverer thread's _bulk), each without its
# signing and without marking the journal.
PHASES = [
    ("request intake", [(1, "FCGX_Accept_r")],
     "libfcgi reads the request and its CGI variables"),
    ("request-id", [(1, "tp_uuid_v4_pooled")], "RAND_bytes (one call per 32 hits) + formatting"),
    ("document", [(1, "tp_doc_build"), (1, "tp_doc_serialize")], "CGI variables to JSON text"),
    ("journal append", [(1, "tp_output_action"), (1, "tp_journal_append")],
     "the _bulk action line + one write()"),
    ("response", [(1, "tp_pixel_response"), (1, "FCGX_PutStr"), (1, "FCGX_Finish_r")],
     "headers + pixel, FastCGI records, finishing the request"),
    ("signing", [(1, "tp_sigv4_sign_cached")], "SigV4 with the cached signing key"),
    ("delivery", [(1, "tp_es_create"), (1, "deliver_batch"), (-1, "tp_sigv4_sign_cached"),
                  (-1, "deliver_batch>tp_journal_mark")],
     "libcurl's request and answer (and the deliverer's journal read and _bulk answer)"),
    ("journal mark", [(1, "tp_journal_mark")],
     "after delivery: the .done offset, truncating a delivered journal"),
]


def per_hit(a, b, n):
    """Per-hit cost of each function: (run B - run A) / n."""
    return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}


def phases_of(cost):
    rows, used = [], 0.0
    for name, terms, what in PHASES:
        if name == "journal append" and cost.get("journal_hit", 0) > 0:
            terms = [(1, "journal_hit")]
        v = sum(sign * cost.get(key, 0) for sign, key in terms)
        formula = " ".join(("+ " if sign > 0 else "- ") + key for sign, key in terms)[2:]
        rows.append((name, formula, v, what))
        used += v
    rows.append(("other", "total - the rows above", cost["TOTAL"] - used,
                 "the accept loop, tp_doc_free, the deliverer thread's loop, locks, ..."))
    return rows


def profile(opts, stopper, work):
    es = EsFast(stopper, work).start()
    try:
        w, n = opts.cg_warm, opts.cg_hits
        log("callgrind: %d hits, then %d hits (about %d s)" % (w, w + n, (2 * w + n) // 40 + 10))
        a = callgrind_run(opts, stopper, work, es, w, "a")
        b = callgrind_run(opts, stopper, work, es, w + n, "b")
        st = es.stats()
    finally:
        es.stop()
    cost = per_hit(a, b, n)
    top = sorted(((v, k) for k, v in cost.items()
                  if k != "TOTAL" and ">" not in k and not k.startswith(("0x", "(below main)",
                                                                         "__libc_start"))),
                 reverse=True)
    return {"warm": w, "hits": n, "cost": cost, "phases": phases_of(cost), "es": st,
            "top": top[:40]}


def memory(opts, stopper, work):
    """One worker's memory after each step of opts.rss_points hits; then
    (unless quick) after opts.outage_hits more while the cluster is down,
    once they are all delivered: the deliverer reads the backlog in
    batches of up to 4 MiB."""
    floor = lib_floor()
    es = EsFast(stopper, work).start()
    d = os.path.join(work, "rss")
    points = []
    try:
        w = LoneWorker(stopper, d, worker_env(es.url, os.path.join(d, "spool"))).start()
        tplib.wait_for(lambda: os.path.exists("/proc/%d/status" % w.proc.pid), 5, "the worker")
        time.sleep(0.2)
        done = 0
        t0 = time.monotonic()
        for target in opts.rss_points:
            w.hits(target - done)
            done = target
            time.sleep(0.2)               # let the post of the last hit finish
            points.append((done, "", w.rss_kib()))
            log("RSS after %d hits: %d KiB" % (done, points[-1][2]["VmRSS"]))
        secs = time.monotonic() - t0
        libs = rss_by_mapping(w.proc.pid)[:8]
        # Two outages: the first is also the delivery thread's first real
        # work (its stack and malloc arena); the second shows any growth.
        for k in range(2 if opts.outage_hits else 0):
            port = es.port
            settle(es.docs, quiet=0.5)
            es.stop()
            w.hits(opts.outage_hits)
            done += opts.outage_hits
            es = EsFast(stopper, work, port=port).start()
            tplib.wait_for(lambda: es.docs() >= opts.outage_hits, 60,
                           "the backlog delivered after the outage")
            settle(es.docs, quiet=0.5)
            points.append((done, "the last %d while the cluster was down, then delivered%s"
                           % (opts.outage_hits, ": a second outage" if k else ""),
                           w.rss_kib()))
            log("RSS after outage %d: %d KiB" % (k + 1, points[-1][2]["VmRSS"]))

        rc = w.stop()
        docs = settle(es.docs)
    finally:
        es.stop()
    return {"points": points, "seconds": secs, "exit": rc, "docs": docs, "libs": libs,
            "steady": [p for p in points if not p[1]], "floor": floor}


def mem_kib(pid):
    """VmRSS, VmHWM, RssAnon, RssFile (/proc/<pid>/status), and Pss and
    Private (Private_Clean + Private_Dirty) from /proc/<pid>/smaps_rollup."""
    with open("/proc/%d/status" % pid) as f:
        text = f.read()
    out = {k: int(re.search(r"^%s:\s+(\d+) kB" % k, text, re.M).group(1))
           for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        text = f.read()
    field = lambda k: int(re.search(r"^%s:\s+(\d+) kB" % k, text, re.M).group(1))  # noqa: E731
    out["Pss"] = field("Pss")
    out["Private"] = field("Private_Clean") + field("Private_Dirty")
    return out


def lib_floor():
    """The memory of bench/lib_floor: trackpixel's libraries loaded, then
    also initialized as trackpixel's main() does, before any hit."""
    out = []
    for arg, what in (([], "trackpixel's libraries loaded, nothing run (bench/lib_floor)"),
                      (["init"], "the same, initialized as trackpixel starts "
                                 "(bench/lib_floor init)")):
        p = subprocess.Popen([LIB_FLOOR] + arg, stdout=subprocess.PIPE)
        try:
            if p.stdout.readline().strip() != b"ready":
                raise RuntimeError("bench/lib_floor did not start")
            out.append((what, mem_kib(p.pid)))
        finally:
            p.terminate()
            p.wait(10)
    return out


def rss_by_mapping(pid):
    """[(mapping, RSS KiB)], largest first, from /proc/<pid>/smaps."""
    agg, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and re.match(r"^[0-9a-f]+-[0-9a-f]+$", parts[0]):
                cur = parts[5] if len(parts) > 5 else "[anonymous]"
            elif parts and parts[0] == "Rss:":
                agg[cur] = agg.get(cur, 0) + int(parts[1])
    return sorted(agg.items(), key=lambda kv: -kv[1])


# ------------------------------------------------------------- the report

def cmd_out(argv):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=20)
        return (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = f.read()
    models = re.findall(r"^model name\s*:\s*(.*)$", cpu, re.M)
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    first = lambda s: s.splitlines()[0] if s else "?"   # noqa: E731
    version = "?"
    try:
        with open(os.path.join(BUILDDIR, "config.h")) as f:
            version = re.search(r'#define PACKAGE_VERSION "([^"]*)"', f.read()).group(1)
    except (OSError, AttributeError):
        pass
    commit = cmd_out(["git", "-C", SRCDIR, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", SRCDIR, "status", "--porcelain", "--untracked-files=no"])
    changed = sorted(line.split(None, 1)[1] for line in dirty.splitlines()
                     if len(line.split(None, 1)) == 2)
    with open(TRACKPIXEL, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return {
        "cores": os.cpu_count(),
        "cpu": models[0] if models else platform.processor() or "?",
        "mem_gib": mem / 1024 / 1024,
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "lighttpd": first(cmd_out(["lighttpd", "-v"])),
        "apache2": first(cmd_out(["apache2", "-v"])).replace("Server version: ", ""),
        "mod_fcgid": cmd_out(["sh", "-c", "dpkg-query -W -f '${Version}' libapache2-mod-fcgid"]),
        "nginx": cmd_out(["nginx", "-v"]).replace("nginx version: ", ""),
        "libcurl": cmd_out(["pkg-config", "--modversion", "libcurl"]),
        "openssl": first(cmd_out(["openssl", "version"])),
        "json-c": cmd_out(["pkg-config", "--modversion", "json-c"]),
        "wrk": first(cmd_out(["wrk", "-v"])),
        "valgrind": cmd_out(["valgrind", "--version"]),
        "python": platform.python_version(),
        "trackpixel": "%s (git %s%s; the binary's SHA-256 starts %s)"
                      % (version, commit, ", with uncommitted changes to " + ", ".join(changed)
                         if changed else "", digest),
        "load_before": loadavg(),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " / ".join(f.read().split()[:3])


def ms(us):
    return "%.2f ms" % (us / 1000.0) if us < 100000 else "%.0f ms" % (us / 1000.0)


ROWS = {
    1: "nginx empty_gif (43-byte GIF)",
    2: "lighttpd, static 60-byte file",
    3: "lighttpd + bare FastCGI pixel (bench/bare_pixel)",
    4: "lighttpd + trackpixel, fast stand-in",
    5: "Apache mod_fcgid + trackpixel, fast stand-in",
    6: "lighttpd + trackpixel, stand-in takes %d ms" % SLOW_MS,
    7: "lighttpd + trackpixel, stand-in stopped",
    8: "Apache mod_fcgid + bare FastCGI pixel (for comparison with 5)",
    9: "lighttpd + trackpixel, stand-in accepts and never answers",
}


def note(n, r):
    parts = []
    if "workers" in r:
        first, last, gone = r["workers"]
        if gone:
            parts.append("%d processes at the start, %d of them replaced during the run "
                         "(%d at the end)" % (first, gone, last))
        else:
            parts.append("%d processes" % first)
    if "docs" in r:
        served = r["requests"] - r["status"]
        parts.append("%d documents reached the stand-in for %d pixels counted by wrk "
                     "(requests in flight when wrk stops are not counted)" % (r["docs"], served))
        parts.append("%d one by one (`_create`), %d in %d `_bulk` requests; %s"
                     % (r["es_creates"], r["es_bulk_docs"], r["es_bulks"],
                        "every request signed" if r["es_signed"] == r["es_requests"] else
                        "%d of %d requests signed" % (r["es_signed"], r["es_requests"])))
    if "docs_during" in r:
        parts.append("%d documents delivered during the warm-up and the run" % r["docs_during"])
    if "spool_bytes" in r:
        parts.append("%.1f MB waiting in %d spool files afterwards"
                     % (r["spool_bytes"] / 1e6, r["spool_files"]))
    return "; ".join(parts)


def reading_notes(opts, results):
    """What the numbers of this run say, in words (only what they show)."""
    out = []
    r = results
    stolen = []
    for n in sorted(r):
        mach = r[n].get("cpu", {}).get("machine")
        secs = r[n].get("duration_us", 0) / 1e6
        if mach and secs and mach[1] / secs >= 0.1:
            stolen.append("%d (%.2f cores)" % (n, mach[1] / secs))
    if stolen:
        out.append("The hypervisor gave part of this machine's cores to other machines "
                   "(steal) during row%s %s: those rows measured less than this machine can "
                   "do, and the targets that compare them are not a clean measurement."
                   % ("s" if len(stolen) > 1 else "", ", ".join(stolen)))
    if 3 in r and 4 in r:
        cpu3, cpu4 = r[3].get("cpu", {}), r[4].get("cpu", {})
        g = "FastCGI processes"
        if g in cpu3 and g in cpu4 and r[3]["requests"] and r[4]["requests"]:
            per3 = sum(cpu3[g]) / r[3]["requests"] * 1e6
            per4 = sum(cpu4[g]) / r[4]["requests"] * 1e6
            each = lambda row, grp: (sum(row["cpu"].get(grp, (0, 0))) /   # noqa: E731
                                     row["requests"] * 1e6)
            out.append("Row 4 against row 3: a trackpixel process used %.0f us of CPU per hit "
                       "where the bare pixel used %.0f us (%.1f times as much); lighttpd %.0f "
                       "and %.0f us, wrk %.0f and %.0f us, the stand-in %.0f us. On %d cores "
                       "shared by all of them, that is what the ratio 4/3 = %.2f measures."
                       % (per4, per3, per4 / per3 if per3 else 0, each(r[4], "web server"),
                          each(r[3], "web server"), each(r[4], "wrk"), each(r[3], "wrk"),
                          each(r[4], "stand-in"), os.cpu_count(), r[4]["rps"] / r[3]["rps"]))
    if 4 in r and r[4].get("es_creates") and not r[4].get("es_bulk_docs"):
        out.append("In row 4 every document went out in a request of its own (`_create`, "
                   "posted by the worker that took the hit, after the pixel and before it "
                   "accepts the next hit): no batching happened.")
    elif 4 in r and r[4].get("es_bulks"):
        out.append("In row 4, %d documents went out in %d `_bulk` requests (%.1f a request)."
                   % (r[4]["es_bulk_docs"], r[4]["es_bulks"],
                      r[4]["es_bulk_docs"] / r[4]["es_bulks"]))
    if (6 in r and r[6]["p99"] > 100000 and
            r[6]["rps"] < 2 * opts.workers * 1000.0 / SLOW_MS):
        out.append("Row 6: the pixel's latency follows the cluster's. A worker posts each hit "
                   "before it accepts the next one, so with a cluster that takes %d ms each of "
                   "the %d processes serves about %.1f hits a second (%.0f/s in all, %.0f/s "
                   "measured) and the other requests wait in lighttpd's queue."
                   % (SLOW_MS, opts.workers, 1000.0 / SLOW_MS, opts.workers * 1000.0 / SLOW_MS,
                      r[6]["rps"]))
    if 7 in r and 4 in r and r[7]["rps"] > r[4]["rps"]:
        out.append("Row 7 is faster than row 4: while the cluster is known to be down a hit "
                   "costs a journal append and no post (the deliverer thread retries with "
                   "backoff); %.0f MB were waiting in the spool at the end."
                   % (r[7].get("spool_bytes", 0) / 1e6))
    if 9 in r and r[9]["p99"] > 1000000:
        out.append("Row 9: a worker that posts a hit itself waits for the cluster's answer "
                   "before it takes its next request; with a cluster that never answers that "
                   "is TRACKPIXEL_TIMEOUT_MS (max %.1f s here), and the requests queued behind "
                   "that worker wait as long." % (r[9]["max"] / 1e6))
    slow = [n for n in (5, 8) if n in r and r[n]["p99"] > 500000]
    if slow:
        text = ("Row%s %s, p99 near or above 1 s: wrk keeps %d requests in flight and "
                "mod_fcgid has %d processes; a request that finds none idle makes mod_fcgid "
                "2.3.9 sleep a whole second before it looks again (fcgid_bridge.c)."
                % ("s" if len(slow) > 1 else "", " and ".join(map(str, slow)), opts.conns,
                   opts.workers))
        if slow == [5, 8]:
            text += (" Row 8 (the bare pixel) has the same tail, so it is mod_fcgid's, not "
                     "trackpixel's; keeping concurrent requests below FcgidMaxProcessesPerClass "
                     "avoids it.")
        out.append(text)
    return out


def verdict(ok):
    return "**met**" if ok else "**not met**"


# The first full run of make bench (before the work of issue 6 on CPU and
# memory): its BENCHMARKS.md, read from git, is what "before" means below.
BASELINE = "a7f9601"


def baseline():
    """Figures of BASELINE's BENCHMARKS.md, or None (no git, e.g. a tarball)."""
    text = cmd_out(["git", "-C", SRCDIR, "show", BASELINE + ":BENCHMARKS.md"])
    if "instructions per hit" not in text:
        return None
    b = {"phases": {}, "commits": []}
    m = re.search(r"\*\*(\d+) instructions per hit\*\*", text)
    b["total"] = int(m.group(1)) if m else None
    for m in re.finditer(r"^\| ([a-z -]+) \| `[^`]*` \| (-?\d+) \|", text, re.M):
        b["phases"][m.group(1)] = int(m.group(2))
    m = re.search(r"^\| 4 \| [\d ()]+\| (\d+) \((\d+)\) \|", text, re.M)
    b["cpu4"] = (int(m.group(1)), int(m.group(2))) if m else None
    m = re.search(r"median (\d+\.\d+)", text)
    b["ratio"] = float(m.group(1)) if m else None
    m = re.search(r"^\| one worker's RSS <= 8 MiB \| (\d+\.\d+) MiB", text, re.M)
    b["rss"] = float(m.group(1)) if m else None
    log_ = cmd_out(["git", "-C", SRCDIR, "log", "--reverse", "--format=%h %s",
                    BASELINE + "..HEAD", "--", "src", "bench/es_fast.c"])
    b["commits"] = [line for line in log_.splitlines() if re.match(r"^[0-9a-f]{7,} ", line)]
    return b


def before_after(add, base, results, prof, mem):
    """The section comparing this run with BASELINE's report."""
    rows = []
    if prof and base.get("total"):
        c = prof["cost"]
        rows.append(("instructions per hit (callgrind), all", "%d" % base["total"],
                     "%.0f" % c["TOTAL"]))
        for name, _, v, _ in prof["phases"]:
            if name in base["phases"]:
                rows.append(("- " + name, "%d" % base["phases"][name], "%.0f" % v))
    if 4 in results and base.get("cpu4") and results[4].get("cpu"):
        cpu, n = results[4]["cpu"].get("FastCGI processes"), results[4]["requests"]
        if cpu and n:
            rows.append(("row 4: CPU of the trackpixel processes per hit, us (system part)",
                         "%d (%d)" % base["cpu4"], "%.0f (%.0f)"
                         % (sum(cpu) / n * 1e6, cpu[1] / n * 1e6)))
    r = ratios_43(results) if 3 in results and 4 in results else None
    if r and base.get("ratio"):
        rows.append(("4/3 (median of the pairs)", "%.2f" % base["ratio"], "%.2f" % median(r)))
    if mem and base.get("rss"):
        rss_max = max(p[2]["VmRSS"] for p in mem["steady"])
        rows.append(("one worker's largest RSS, MiB", "%.2f" % base["rss"],
                     "%.2f" % (rss_max / 1024)))
    if not rows:
        return
    add("## Before and after")
    add("")
    add("This run against the first full run of `make bench` (commit %s, before the changes "
        "below), whose figures are read from that commit's BENCHMARKS.md." % BASELINE)
    add("")
    add("| | %s | this run |" % BASELINE)
    add("|---|---:|---:|")
    for what, a, b in rows:
        add("| %s | %s | %s |" % (what, a, b))
    add("")
    if base["commits"]:
        add("The changes to the program since (`git log %s..HEAD -- src bench/es_fast.c`):"
            % BASELINE)
        add("")
        for line in base["commits"]:
            add("- " + line)
        add("")


def report(opts, m, results, prof, mem, started, elapsed):
    L = []
    add = L.append
    add("# trackpixel benchmarks")
    add("")
    add("Generated by `make bench` (bench/bench.py%s) on %s UTC, in %.0f s. Do not edit: "
        "run it again." % (", quick mode" if opts.quick else "",
                           started.strftime("%Y-%m-%d %H:%M"), elapsed))
    add("")
    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    add("| cores | %d |" % m["cores"])
    add("| CPU | %s |" % m["cpu"])
    add("| memory | %.1f GiB |" % m["mem_gib"])
    add("| system | %s, Linux %s |" % (m["os"], m["kernel"]))
    for k in ("lighttpd", "apache2", "mod_fcgid", "nginx", "libcurl", "openssl", "json-c",
              "wrk", "valgrind", "trackpixel"):
        add("| %s | %s |" % (k, m[k]))
    add("| load average (1/5/15 min) | %s before the run, %s after it |"
        % (m["load_before"], loadavg()))
    add("")
    add("## How it was measured")
    add("")
    add("- Load: `wrk -t%d -c%d -d%ds --timeout 10s --latency` on 127.0.0.1, the same for "
        "every row, after a %d s warm-up run on the same server that is not counted "
        "(row 7: its warm-up runs while the stand-in is up, which is then stopped). In rows 6 "
        "and 9 the warm-up also takes each worker's first hit, which waits up to 4 x "
        "TRACKPIXEL_SLOW_MS (200 ms) for the slow cluster before the worker leaves posting to "
        "its delivery thread. Client, servers and stand-in share "
        "the machine's %d cores." % (opts.threads, opts.conns, opts.duration, opts.warmup,
                                      m["cores"]))
    add("- The request, for every row: `GET /pixel?%s` with the headers a browser sends "
        "for an image (%s)." % (QUERY, ", ".join(n for n, _ in HEADERS)))
    add("- Rows 2-9 run the shipped `lighttpd/50-trackpixel.conf` and "
        "`apache/trackpixel.conf`, rendered by `tests/webserver.py` as the tests do, with one "
        "change: the number of worker processes, **%d** for rows 3 to 9 (lighttpd "
        "`max-procs` %s in the shipped file, Apache `FcgidMaxProcessesPerClass` %s in the "
        "shipped file; Apache's processes are started by the warm-up). Row 3 is "
        "`bench/bare_pixel` through the very same lighttpd configuration: it writes the "
        "bytes trackpixel writes (status, headers, a fixed X-Request-Id, the 60-byte BMP) "
        "and does nothing else. Everything else as shipped (e.g. Apache's "
        "`FcgidMaxRequestsPerProcess %s`: a process is replaced after that many hits, "
        "also during a run)."
        % (opts.workers, opts.shipped_lighttpd, opts.shipped_apache, opts.shipped_apache_reqs))
    add("- Rows 4-7 and 9 as in production: documents signed with SigV4 (long-term keys, region "
        "%s, service es), each hit journaled first in a spool directory (no fsync, the "
        "default), then delivered the way the program does it: one by one with `_create`, "
        "or by the deliverer thread with `_bulk` (the notes say how many went which way). The cluster is `bench/es_fast`, a one-thread "
        "epoll stand-in that answers 201 (one item per document for `_bulk`) without "
        "verifying, so that it is not the bottleneck; row 6 answers %d ms after each request; "
        "in row 7 it is stopped after the warm-up, so the workers see their open "
        "connections close and then connections refused; in row 9 it accepts connections "
        "and requests and never answers (a hung cluster: every post ends at "
        "TRACKPIXEL_TIMEOUT_MS, 5000 in the shipped configuration)." % (REGION, SLOW_MS))
    add("- nginx (row 1): its own configuration, `worker_processes auto` (%d here), "
        "`access_log off`, `location = /pixel { empty_gif; }`." % m["cores"])
    add("")
    add("## Results")
    add("")
    add("| # | server | requests/s | p50 | p99 | errors | notes |")
    add("|---|---|---:|---:|---:|---:|---|")
    for n in sorted(results):
        r = results[n]
        add("| %d | %s | %.0f | %s | %s | %d | %s |"
            % (n, ROWS[n], r["rps"], ms(r["p50"]), ms(r["p99"]), r["errors"], note(n, r)))
    add("")
    add("errors: wrk's connect, read, write and timeout errors plus non-2xx answers.")
    add("")
    if any("cpu" in r for r in results.values()):
        add("### Where the CPU goes")
        add("")
        add("CPU time (user + system, from `/proc/<pid>/stat`) each group of processes used "
            "during the measured run, per request served, in microseconds; in brackets the "
            "system (kernel) part. All %d cores together: %.0f us of CPU per second."
            % (m["cores"], m["cores"] * 1e6))
        add("")
        groups = ["web server", "FastCGI processes", "stand-in", "wrk"]
        add("| # | " + " | ".join(groups) + " | all | cores busy | others |")
        add("|---|" + "---:|" * (len(groups) + 3))
        for n in sorted(results):
            r = results[n]
            if "cpu" not in r or not r["requests"]:
                continue
            cells, total = [], 0.0
            for g in groups:
                if g not in r["cpu"]:
                    cells.append("")
                    continue
                u, sy = r["cpu"][g]
                total += u + sy
                cells.append("%.0f (%.0f)" % ((u + sy) / r["requests"] * 1e6,
                                               sy / r["requests"] * 1e6))
            mach = r["cpu"].get("machine")
            others = ""
            if mach:
                secs = r["duration_us"] / 1e6
                others = "%.2f cores%s" % (max(0.0, mach[0] - mach[2]) / secs,
                                           " (steal %.2f)" % (mach[1] / secs) if mach[1] else "")
            add("| %d | %s | %.0f | %.2f of %d | %s |" % (n, " | ".join(cells),
                                                        total / r["requests"] * 1e6,
                                                        total / (r["duration_us"] / 1e6),
                                                        m["cores"], others))
        add("")
        add("others: what the machine's cores did during the run besides the processes "
            "above, in cores (from /proc/stat: other processes, interrupts, and time a "
            "hypervisor gave to other machines, \"steal\"). A row with much of it ran "
            "on a machine that was not its own.")
        add("")
        replaced = [str(n) for n in sorted(results)
                    if "cpu" in results[n] and results[n].get("workers", (0, 0, 0))[2]]
        if replaced:
            add("Row%s %s: processes were replaced during the run (mod_fcgid's "
                "`FcgidMaxRequestsPerProcess`); what a replaced process used is missing, so "
                "the FastCGI figure is a lower bound."
                % ("s" if len(replaced) > 1 else "", " and ".join(replaced)))
            add("")
    targets = []
    if 3 in results:
        add("## Ratios")
        add("")
        for n in (4, 5):
            if n in results:
                add("- %d/3 = %.2f (%s / bare FastCGI pixel)" %
                    (n, results[n]["rps"] / results[3]["rps"], ROWS[n]))
        if 4 in results and results[3].get("repeats"):
            rs = ratios_43(results)
            add("- 4/3 over %d alternating runs of rows 3 and 4 (the table's and %d more "
                "pairs): %s; median %.2f. Row 3: %s requests/s; row 4: %s requests/s."
                % (len(rs), len(rs) - 1, ", ".join("%.2f" % x for x in rs), median(rs),
                   ", ".join("%.0f" % x for x in [results[3]["rps"]] + results[3]["repeats"]),
                   ", ".join("%.0f" % x for x in [results[4]["rps"]] + results[4]["repeats"])))
        if 5 in results and 8 in results:
            add("- 5/8 = %.2f (trackpixel / bare FastCGI pixel, both under Apache mod_fcgid)" %
                (results[5]["rps"] / results[8]["rps"]))
        if 1 in results:
            add("- 3/1 = %.2f (bare FastCGI pixel / nginx empty_gif)" %
                (results[3]["rps"] / results[1]["rps"]))
        add("")
        if 4 in results:
            rs = ratios_43(results)
            q = median(rs)
            targets.append(("4/3 >= 0.75", "%.2f%s" % (q, " (median of %d pairs, %.2f to %.2f)"
                                                       % (len(rs), min(rs), max(rs))
                                                       if len(rs) > 1 else ""), q >= 0.75))
    if 4 in results:
        p99 = results[4]["p99"]
        for n in (6, 7):
            if n in results:
                d = (results[n]["p99"] - p99) / 1000.0
                targets.append(("%d: p99 within 2 ms of 4's p99 (%s)" % (n, ms(p99)),
                                "%s (%+.2f ms)" % (ms(results[n]["p99"]), d), d <= 2.0))
        if 9 in results:
            d = (results[9]["p99"] - p99) / 1000.0
            targets.append(("9 (not a target of the issue): p99 within 2 ms of 4's",
                            "%s (%+.2f ms)" % (ms(results[9]["p99"]), d), d <= 2.0))
        if 7 in results:
            q = results[7]["rps"] / results[4]["rps"]
            targets.append(("7: throughput within 10 %% of 4's (at least %.0f/s)"
                            % (0.9 * results[4]["rps"]), "%.0f/s (%.0f %% of 4)"
                            % (results[7]["rps"], 100 * q), q >= 0.9))
    if mem:
        first, last = mem["steady"][0], mem["steady"][-1]
        rss_max = max(p[2]["VmRSS"] for p in mem["steady"])
        floor = mem.get("floor") or []
        targets.append(("one worker's RSS <= 8 MiB", "%.2f MiB (largest from %d to %d hits)%s"
                        % (rss_max / 1024, first[0], last[0],
                           "; the libraries alone, initialized, before any hit: %.2f MiB"
                           % (floor[-1][1]["VmRSS"] / 1024) if floor else ""),
                        rss_max <= 8 * 1024))
        growth = last[2]["VmRSS"] - first[2]["VmRSS"]
        targets.append(("RSS flat from %d to %d hits (grows by at most 256 KiB)"
                        % (first[0], last[0]),
                        "%+d KiB" % growth, growth <= 256))
        outage = [p for p in mem["points"] if p[1]]
        if len(outage) >= 2:
            first_out = outage[0][2]["VmRSS"] - last[2]["VmRSS"]
            grown = outage[-1][2]["VmRSS"] - outage[0][2]["VmRSS"]
            targets.append(("(not a target of the issue) RSS flat from one delivered "
                            "%d-hit backlog to the next" % opts.outage_hits,
                            "%+d KiB (the first backlog: %+d KiB, which the next one reuses)"
                            % (grown, first_out), grown <= 256))
    if targets:
        add("## Targets")
        add("")
        add("| target | measured | |")
        add("|---|---|---|")
        for what, got, ok in targets:
            add("| %s | %s | %s |" % (what, got, verdict(ok)))
        add("")
    notes = reading_notes(opts, results)
    if notes:
        add("## Reading the results")
        add("")
        for n in notes:
            add("- " + n)
        add("")
    base = baseline()
    if base:
        before_after(add, base, results, prof, mem)
    if prof:
        c = prof["cost"]
        add("## Instructions per hit")
        add("")
        add("`valgrind --tool=callgrind` on one trackpixel worker (the production settings of "
            "rows 4-7 and 9, fast stand-in), fed by `tests/fcgi_client.py` one request at a time on a "
            "new connection each (as lighttpd and mod_fcgid connect). Two runs, of %d and of %d "
            "hits; each figure is (run 2 - run 1) / %d, so start-up, the first connection and "
            "shutdown cancel out. A function's inclusive cost is its own plus that of every "
            "call it makes, as `callgrind_annotate --inclusive=yes` adds them up, but one "
            "figure per function (callgrind_annotate splits some functions in two partial "
            "entries, one per spelling of their source file's name). User-space instructions "
            "only: the kernel's work in system calls is not counted (see the system part of "
            "the CPU table above), and valgrind's CPU model has no SHA extensions, so OpenSSL "
            "hashes with more instructions here than natively."
            % (prof["warm"], prof["warm"] + prof["hits"], prof["hits"]))
        add("")
        add("**%.0f instructions per hit** in all." % c["TOTAL"])
        add("")
        add("| phase | functions (inclusive) | instructions/hit | share | |")
        add("|---|---|---:|---:|---|")
        for name, formula, v, what in prof["phases"]:
            add("| %s | `%s` | %.0f | %.0f %% | %s |" % (name, formula, v, 100 * v / c["TOTAL"], what))
        add("")
        es = prof["es"]
        add("The stand-in received, over the two runs, %d documents: %d one by one "
            "(`_create`, posted by the hit's own worker loop) and %d in %d `_bulk` requests "
            "(sent by the deliverer thread). `X>Y` is the cost of X's calls to Y only."
            % (es["creates"] + es["bulk_docs"], es["creates"], es["bulk_docs"], es["bulks"]))
        add("")
        add("From run to run the phases of the pixel's own path (request intake to response) "
            "repeat within a few percent (json-c seeds its hash tables at random in each "
            "process).%s" % (" Signing and delivery also depend on how many documents each "
                             "`_bulk` request carries, which depends on timing: compare them "
                             "across runs with care." if es["bulks"] else ""))
        add("")
        add("Largest inclusive costs per hit (named functions of trackpixel and of the "
            "libraries; the libraries' unnamed internal functions are left out):")
        add("")
        add("| function | instructions/hit |")
        add("|---|---:|")
        for v, k in prof["top"][:25]:
            add("| `%s` | %.0f |" % (k, v))
        add("")
    if mem:
        add("## Memory of one worker")
        add("")
        add("One trackpixel (the production settings of rows 4-7 and 9, fast stand-in), hits "
            "sent one "
            "after another by `tests/fcgi_client.py` (%d hits in %.0f s), `/proc/<pid>/status` "
            "read after each step:"
            % (mem["steady"][-1][0], mem["seconds"]))
        add("")
        add("| hits | VmRSS | RssAnon | RssFile | VmHWM | Pss | Private |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for what, k in mem.get("floor", []):
            add("| 0: %s | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB |" %
                (what, k["VmRSS"], k["RssAnon"], k["RssFile"], k["VmHWM"], k["Pss"],
                 k["Private"]))
        for hits, what, k in mem["points"]:
            add("| %d%s | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB |" %
                (hits, " (%s)" % what if what else "", k["VmRSS"], k["RssAnon"],
                 k["RssFile"], k["VmHWM"], k["Pss"], k["Private"]))
        add("")
        add("RssFile is the pages of the program and of its shared libraries that the worker "
            "has touched (libcrypto, libc, libcurl and what libcurl links: GnuTLS, Kerberos, "
            "LDAP, ...), mapped 64 KiB around each page used (the kernel's fault-around): the "
            "same pages for every worker and every other process using those libraries. "
            "RssAnon (heap, stacks) is the worker's own. Pss shares each page among the "
            "processes that map it (measured with only this worker running: with 8 workers "
            "it is lower); Private is what this worker alone holds. The two `0:` rows are "
            "bench/lib_floor, a program that links exactly trackpixel's libraries and does "
            "nothing else: what they cost before the first hit.")
        add("")
        libs = mem.get("libs")
        if libs:
            add("Largest parts of the RSS after the last step: " + ", ".join(
                "%s %d KiB" % (os.path.basename(k), v) for k, v in libs) + ".")
            add("")
        add("The stand-in received %d documents; the worker exited with status %s."
            % (mem["docs"], mem["exit"]))
        add("")
    add("## Reproduce")
    add("")
    add("    apt-get install -y nginx lighttpd apache2 libapache2-mod-fcgid wrk valgrind")
    add("    ./configure && make && make bench                # this file, about 4 minutes")
    add("    make bench BENCH_QUICK=1                         # short run (CI), bench/quick.md")
    add("")
    add("`bench/bench.py --help` lists the options (duration, connections, rows). Run on an "
        "otherwise idle machine: every process of the run shares its cores.")
    return "\n".join(L) + "\n"


def summary_lines(results, prof, mem):
    out = []
    for n in sorted(results):
        r = results[n]
        out.append("%d %-50s %9.0f req/s  p50 %9s  p99 %9s  errors %d"
                   % (n, ROWS[n], r["rps"], ms(r["p50"]), ms(r["p99"]), r["errors"]))
    if 3 in results:
        for n in (4, 5):
            if n in results:
                out.append("%d/3 = %.2f" % (n, results[n]["rps"] / results[3]["rps"]))
        if 4 in results and results[3].get("repeats"):
            rs = ratios_43(results)
            out.append("4/3 in %d pairs: %s (median %.2f)"
                       % (len(rs), " ".join("%.2f" % x for x in rs), median(rs)))
    if prof:
        out.append("instructions per hit: %.0f" % prof["cost"]["TOTAL"])
        for name, formula, v, _ in prof["phases"]:
            out.append("  %-15s %10.0f   %s" % (name, v, formula))
    if mem:
        for hits, what, k in mem["points"]:
            out.append("RSS after %d hits%s: %d KiB" % (hits, " (%s)" % what if what else "",
                                                        k["VmRSS"]))
    return out


# ------------------------------------------------------------------ main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="short run for CI: 3 s per row, 1 s warm-up, 200 profiled hits, "
                         "RSS up to 10,000 hits; writes bench/quick.md")
    ap.add_argument("--duration", type=int, help="seconds of load per row (10; quick 3)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up per row (2; quick 1)")
    ap.add_argument("--connections", dest="conns", type=int, default=16,
                    help="wrk connections, the same for every row (16)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--workers", type=int, default=8,
                    help="FastCGI processes for rows 3-9 (8)")
    ap.add_argument("--rows", help="which rows, e.g. 3,4 (default 1-9; quick: 1-8) (8: Apache "
                                   "+ bare pixel, to compare with 5; 9: a cluster that never "
                                   "answers)")
    ap.add_argument("--repeats", type=int,
                    help="rows 3 and 4 again this many times each, alternating, for the "
                         "median of 4/3 (2; quick 0)")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the callgrind profile")
    ap.add_argument("--no-memory", dest="memory", action="store_false",
                    help="skip the RSS measurement")
    ap.add_argument("--out", help="the report (default: BENCHMARKS.md in the source tree; "
                                  "quick: bench/quick.md in the build tree)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    opts = ap.parse_args(argv)
    opts.duration = opts.duration or (3 if opts.quick else 10)
    opts.warmup = opts.warmup if opts.warmup is not None else (1 if opts.quick else 2)
    opts.cg_warm, opts.cg_hits = (20, 200) if opts.quick else (100, 2000)
    if opts.repeats is None:
        opts.repeats = 0 if opts.quick else 2
    opts.rss_points = [1000, 10000] if opts.quick else [1000, 10000, 100000]
    opts.outage_hits = 0 if opts.quick else 5000
    if opts.rows is None:
        # Row 9 needs runs longer than TRACKPIXEL_TIMEOUT_MS (5 s): wrk does
        # not count requests still waiting when a run ends, so a 3 s run
        # would not see the stall at all.
        opts.rows = "1,2,3,4,5,6,7,8" if opts.quick else "1,2,3,4,5,6,7,8,9"
    rows = {int(x) for x in opts.rows.split(",") if x.strip()}
    opts.want = lambda n: n in rows
    if not opts.out:
        opts.out = (os.path.join(BUILDDIR, "bench", "quick.md") if opts.quick
                    else os.path.join(SRCDIR, "BENCHMARKS.md"))
    return opts


def preflight():
    missing = [p for p in ("wrk", "nginx", "lighttpd", "apache2", "valgrind",
                           "callgrind_annotate") if not shutil.which(p)]
    for path in (TRACKPIXEL, BARE_PIXEL, ES_FAST):
        if not os.access(path, os.X_OK):
            missing.append(path + " (run make first)")
    if not os.path.exists(os.path.join(webserver.APACHE_MODULES, "mod_fcgid.so")):
        missing.append("mod_fcgid (libapache2-mod-fcgid)")
    if missing:
        raise SystemExit("bench: missing: " + ", ".join(missing))


def snapshot_programs(work):
    """Copies of the three programs, used for the whole run: a rebuild in
    the tree while the run goes on (make, another engineer's make check)
    cannot mix two versions in one report."""
    global TRACKPIXEL, BARE_PIXEL, ES_FAST
    d = os.path.join(work, "programs")
    os.makedirs(d)
    os.chmod(d, 0o755)
    copies = []
    for path, name in ((TRACKPIXEL, "trackpixel"), (BARE_PIXEL, "bare_pixel"),
                       (ES_FAST, "es_fast")):
        copies.append(os.path.join(d, name))
        shutil.copy2(path, copies[-1])
    TRACKPIXEL, BARE_PIXEL, ES_FAST = copies


def on_signal(sig, frame):
    raise KeyboardInterrupt("signal %d" % sig)


def main(argv):
    opts = parse_args(argv)
    preflight()
    opts.shipped_lighttpd = shipped_setting(webserver.LIGHTTPD_CONF, r'"max-procs"\s*=>\s*(\d+)')
    opts.shipped_apache = shipped_setting(webserver.APACHE_CONF,
                                          r"^\s*FcgidMaxProcessesPerClass\s+(\d+)")
    opts.shipped_apache_reqs = shipped_setting(webserver.APACHE_CONF,
                                               r"^\s*FcgidMaxRequestsPerProcess\s+(\d+)")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="tp-bench-")
    os.chmod(work, 0o755)              # the servers' user must reach its dirs
    snapshot_programs(work)
    stopper = Stopper()
    results, prof, mem = {}, None, None
    ok = False
    try:
        m = machine()
        log("work directory %s; %d s per row, %d connections, %d workers"
            % (work, opts.duration, opts.conns, opts.workers))
        wrk = Wrk(opts.threads, opts.conns, opts.duration, opts.warmup, work)
        rows_http(opts, stopper, work, wrk, results)
        rows_trackpixel(opts, stopper, work, wrk, results)
        if opts.repeats and 3 in results and 4 in results:
            log("rows 3 and 4 again, %d times each, alternating" % opts.repeats)
            ratio_repeats(opts, stopper, work, wrk, results)
        if opts.profile:
            prof = profile(opts, stopper, work)
        if opts.memory:
            log("RSS of one worker")
            mem = memory(opts, stopper, work)
        text = report(opts, m, results, prof, mem, started, time.monotonic() - t0)
        os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
        with open(opts.out, "w") as f:
            f.write(text)
        for line in summary_lines(results, prof, mem):
            print(line)
        log("wrote %s in %.0f s" % (opts.out, time.monotonic() - t0))
        ok = True
    except KeyboardInterrupt as e:
        log("interrupted (%s): stopping everything" % (e or "Ctrl-C"))
    finally:
        stopper.close()
        reap_children()
        if opts.keep or not ok:
            log("logs kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
