"""worker.py - one trackpixel worker alone, on a loopback socket handed to it
as its stdin (as spawn-fcgi, lighttpd and mod_fcgid do): its instructions
per hit by phase (valgrind --tool=callgrind; rows.PHASES) and its memory
after a number of hits and after a backlog built while the cluster was
down."""
import os
import re
import signal
import socket
import subprocess
import time

import paths
from paths import PROGRAMS
from rows import HEADERS, KEYS, OTHER_PHASE, PHASE_INSTEAD, PHASES, QUERY, REGION
from runner import EsFast, log, settle, stop_popen
import fcgi_client
import tplib

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
            self.proc = subprocess.Popen(self.prefix + [PROGRAMS["trackpixel"]], stdin=sock.fileno(),
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


def per_hit(a, b, n):
    """Per-hit cost of each function: (run B - run A) / n."""
    return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}


def phases_of(cost):
    """[(name, formula, instructions per hit, what)] of rows.PHASES, then
    "other": the total less the phases."""
    rows, used = [], 0.0
    for name, terms, what in PHASES:
        alt = PHASE_INSTEAD.get(name)
        if alt and cost.get(alt[0][1], 0) > 0:
            terms = alt
        v = sum(sign * cost.get(key, 0) for sign, key in terms)
        formula = " ".join(("+ " if sign > 0 else "- ") + key for sign, key in terms)[2:]
        rows.append((name, formula, v, what))
        used += v
    rows.append((OTHER_PHASE[0], OTHER_PHASE[1], cost["TOTAL"] - used, OTHER_PHASE[2]))
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
        p = subprocess.Popen([paths.LIB_FLOOR] + arg, stdout=subprocess.PIPE)
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
