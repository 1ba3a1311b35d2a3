"""runner.py - starting and stopping what a benchmark row needs (nginx,
lighttpd, Apache mod_fcgid, rsyslogd, the stand-in bench/es_fast, wrk),
measuring a row's load and CPU, and running the rows of rows.py from their
definitions.

Everything listens on 127.0.0.1 only; everything started is pushed on a
Stopper, which stops it in reverse order at the end, also on failure."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import paths
from paths import PROGRAMS
from rows import (CLUSTER_DELAY_MS, HEADERS, KEYS, ORDER, PEER_BATCH, PEER_LOG_FORMAT,
                  PEER_MAX_MESSAGE, PEER_QUEUE_SIZE, PEER_RSYSLOG_CONF, QUERY, REGION, ROWS)
import tplib
import webserver

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
                [PROGRAMS["es_fast"], "--port", str(self.port), "--delay-ms", str(self.delay_ms)],
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
    """nginx with its own configuration in a temporary directory (workdir/
    name).  access_log: None (no log, row 1) or a file that gets one line of
    rows.PEER_LOG_FORMAT for each request (row 10), written as nginx does by
    default: unbuffered, one write() per request, after the answer."""

    def __init__(self, stopper, workdir, port, name="nginx", access_log=None):
        self.stopper = stopper
        self.dir = os.path.join(workdir, name)
        self.port = port
        self.access_log = access_log
        self.proc = None
        self._stop = None

    def logging(self):
        if not self.access_log:
            return "    access_log off;\n"
        fmt = PEER_LOG_FORMAT.replace("\\", "\\\\").replace("'", "\\'")
        return ("    log_format pixel escape=json '%s';\n    access_log %s pixel;\n"
                % (fmt, self.access_log))

    def start(self):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        conf = os.path.join(self.dir, "nginx.conf")
        temps = "".join("    %s_temp_path %s;\n" % (t, os.path.join(self.dir, "tmp", t))
                        for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(conf, "w") as f:
            f.write("daemon off;\nmaster_process on;\nworker_processes auto;\n"
                    "pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
                    "events { worker_connections 1024; }\n"
                    "http {\n%s%s"
                    "    server {\n        listen 127.0.0.1:%d;\n"
                    "        location = /pixel { empty_gif; }\n"
                    "        location / { return 404; }\n    }\n}\n"
                    % (self.dir, self.dir, self.logging(), temps, self.port))
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


class Rsyslogd:
    """rsyslogd in the foreground with its own configuration, work directory
    and pid file, tailing log and shipping each line as a document to the
    stand-in on port (rows.PEER_* settings)."""

    def __init__(self, stopper, workdir, log, port):
        self.stopper = stopper
        self.dir = os.path.join(workdir, "rsyslog")
        self.log = log
        self.port = port
        self.errors = os.path.join(self.dir, "es-errors.json")
        self.proc = None
        self._stop = None

    def start(self):
        work = os.path.join(self.dir, "work")
        os.makedirs(work, exist_ok=True)
        conf = os.path.join(self.dir, "rsyslog.conf")
        with open(conf, "w") as f:
            f.write(PEER_RSYSLOG_CONF.format(
                work=work, max_message=PEER_MAX_MESSAGE, log=self.log, port=self.port,
                errors=self.errors, queue_size=PEER_QUEUE_SIZE, batch=PEER_BATCH,
                messages=os.path.join(self.dir, "messages.log")))
        argv = ["rsyslogd", "-n", "-f", conf, "-i", os.path.join(self.dir, "rsyslogd.pid")]
        check = subprocess.run(argv[:1] + ["-N1"] + argv[2:4], capture_output=True,
                               timeout=30)
        if check.returncode != 0:
            raise RuntimeError("rsyslogd -N1: %s" % check.stderr.decode("utf-8", "replace"))
        with open(os.path.join(self.dir, "stderr.log"), "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True)
        # rsyslogd saves its queue and the file's offset on SIGTERM (up to
        # its own shutdown timeouts, a few seconds).
        self._stop = self.stopper.push("rsyslogd", lambda: stop_popen(self.proc, timeout=30))
        return self

    def rejected_bytes(self):
        """The size of omelasticsearch's errorFile (requests or documents the
        cluster refused)."""
        try:
            return os.path.getsize(self.errors)
        except OSError:
            return 0

    def stop(self):
        if self._stop:
            self.stopper.run(self._stop)
            self._stop = None


class LineCounter:
    """The lines of a file that only grows, counted as they are appended."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.lines = 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    self.lines += chunk.count(b"\n")
                    self.offset += len(chunk)
        except FileNotFoundError:
            pass
        return self.lines


class BenchLighttpd(webserver.Lighttpd):
    """The shipped lighttpd configuration (tests/webserver.py renders it),
    with min-procs and max-procs set to the benchmark's worker count, and
    program (the run's copy of trackpixel or of bench/bare_pixel) copied in
    as bin/trackpixel, so that it is found and stopped as trackpixel is; a
    60-byte file, pixel.bmp, in the document root for the static row."""

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
            text = webserver.replace_all(text, '"%s"' % self.binary, '"%s"' % copy,
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
            # The shipped file serves one file named trackpixel, in this
            # directory (make_server puts the bare pixel's copy in one of its
            # own under that name).
            text = webserver.replace_all(text, os.path.dirname(self.binary),
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
                "--timeout", "10s", "--latency", "-s", paths.REPORT_LUA]
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




def snapshot_programs(work):
    """Copies of the three programs in work, used for the whole run
    (paths.PROGRAMS is pointed at them): a rebuild in the tree while the run
    goes on (make, a make check elsewhere) cannot mix two versions in one
    report."""
    d = os.path.join(work, "programs")
    os.makedirs(d)
    os.chmod(d, 0o755)
    for name in ("trackpixel", "bare_pixel", "es_fast"):
        copy = os.path.join(d, name)
        shutil.copy2(PROGRAMS[name], copy)
        PROGRAMS[name] = copy


# ------------------------------------------------------------- the rows

class Run:
    """What every row needs: the options, the Stopper, the work directory
    and the wrk load."""

    def __init__(self, opts, stopper, work):
        self.opts = opts
        self.stopper = stopper
        self.work = work
        self.wrk = Wrk(opts.threads, opts.conns, opts.duration, opts.warmup, work)


def tp_settings(es_url):
    return {"TRACKPIXEL_ES_URL": es_url, "AWS_REGION": REGION}


def server_groups(srv):
    """The CPU meter's groups of a lighttpd or Apache server."""
    return {
        "web server": lambda: {p: c for p, c in srv.pids().items() if c != "trackpixel"},
        "FastCGI processes": lambda: {p: c for p, c in srv.pids().items()
                                      if c == "trackpixel"}}


def make_server(run, row, es, workdir):
    """The shipped configuration of row.server running row.program, with
    the stand-in es (or none) as its cluster."""
    kw = dict(settings=tp_settings(es.url), secrets=KEYS) if es else {}
    program = PROGRAMS[row.program]
    if row.server == "lighttpd":
        return BenchLighttpd(run.opts.workers, program=program, workdir=workdir, **kw)
    bindir = os.path.dirname(program)
    if row.program != "trackpixel":
        # The shipped Apache file serves one file named trackpixel: a copy
        # of the program under that name, in a directory of its own.
        bindir = os.path.join(workdir, "bin")
        os.makedirs(bindir)
        os.chmod(workdir, 0o755)
        os.chmod(bindir, 0o755)
        shutil.copy2(program, os.path.join(bindir, "trackpixel"))
        workdir = os.path.join(workdir, "server")
    return BenchApache(run.opts.workers, program_dir=bindir, workdir=workdir, **kw)


def spawn_apache(run, srv, url, tag):
    """mod_fcgid starts processes as the load asks for them, a few a second
    (FcgidSpawnScore): load it until all are there (bounded).  Returns the
    requests this took."""
    opts = run.opts
    deadline = time.monotonic() + max(3 * opts.warmup, 6)
    done = 0
    while True:
        done += run.wrk.run(url, max(opts.warmup, 1), tag + "-spawn")["requests"]
        if len(srv.program_pids()) >= opts.workers or time.monotonic() > deadline:
            return done


def run_nginx(run, row):
    ng = Nginx(run.stopper, run.work, tplib.free_port()).start()
    try:
        path = row.path + "?" + QUERY
        check_pixel(ng.port, path, row.size)
        cpu = CpuMeter({"web server": lambda: descendants(ng.proc.pid)})
        return run.wrk.measure("http://127.0.0.1:%d%s" % (ng.port, path), row.tag, cpu=cpu)
    finally:
        ng.stop()


def drained(es, lines, stall=5.0, timeout=120.0):
    """Wait until the stand-in has as many documents as the access log has
    lines (everything nginx logged was shipped): True; False when the count
    stops moving for stall seconds, or after timeout, short of that."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        docs, want = es.docs(), lines()
        if docs >= want:
            return True
        if docs != last:
            last, since = docs, time.monotonic()
        if time.monotonic() - since > stall or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def measure_peer(run, row, ng, rs, es, lines):
    """The peer's measured run.  Its warm-up's documents are all shipped
    before the run starts; the CPU is counted from the run's start until
    rsyslog has shipped the run's last document (its backlog when wrk
    stops is part of the cost of the run's hits)."""
    opts = run.opts
    url = "http://127.0.0.1:%d%s?%s" % (ng.port, row.path, QUERY)
    warm = run.wrk.run(url, opts.warmup, row.tag + "-warmup") if opts.warmup > 0 else None
    if not drained(es, lines):
        raise RuntimeError("rsyslog did not ship the warm-up's %d lines (%d documents); "
                           "see %s" % (lines(), es.docs(), rs.dir))
    before, lines0 = es.stats(), lines()
    cpu = CpuMeter({"web server": lambda: descendants(ng.proc.pid),
                    "shipper": lambda: descendants(rs.proc.pid),
                    "stand-in": lambda: descendants(es.proc.pid)})
    cpu.start()
    t0 = time.monotonic()
    r = run.wrk.run(url, opts.duration, row.tag)
    t_run = time.monotonic()
    r["peer_drained"] = drained(es, lines)
    r["cpu"] = cpu.stop()
    r["cpu_window_s"] = time.monotonic() - t0
    r["drain_s"] = time.monotonic() - t_run
    st = es.stats()
    r["peer_served"] = lines() - lines0
    r["peer_docs"] = (st["creates"] + st["bulk_docs"]) - (before["creates"] +
                                                         before["bulk_docs"])
    for k in ("requests", "bulk_docs", "bulks", "creates", "signed"):
        r["es_" + k] = st[k] - before[k]
    r["peer_rejected_bytes"] = rs.rejected_bytes()
    r["warmup_requests"] = warm["requests"] if warm else 0
    return r


def run_peer(run, row):
    """Row 10: nginx's empty_gif logging each hit as a JSON line, rsyslogd
    tailing the log and shipping it to the fast stand-in, all started here
    with their own files in the row's directory."""
    d = os.path.join(run.work, row.tag)
    os.makedirs(d)
    os.chmod(d, 0o755)
    log_path = os.path.join(d, "access.json")
    open(log_path, "ab").close()
    es = EsFast(run.stopper, d).start()
    rs = ng = None
    try:
        rs = Rsyslogd(run.stopper, d, log_path, es.port).start()
        ng = Nginx(run.stopper, d, tplib.free_port(), access_log=log_path).start()
        check_pixel(ng.port, row.path + "?" + QUERY, row.size)
        lines = LineCounter(log_path)
        if not drained(es, lines, stall=15.0, timeout=30.0):
            raise RuntimeError("rsyslogd shipped no document of %s to the stand-in; see %s"
                               % (log_path, rs.dir))
        return measure_peer(run, row, ng, rs, es, lines)
    finally:
        if ng:
            ng.stop()
        if rs:
            rs.stop()
        es.stop()


def cluster_figures(row, srv, es, before):
    """What the stand-in received during the row (or, the cluster down, what
    waits in the spool)."""
    r = {}
    if row.cluster == "down":
        r["spool_bytes"], r["spool_files"] = spool_bytes(srv.spool)
    elif row.cluster == "fast":
        r["docs"] = settle(es.docs) - (before["creates"] + before["bulk_docs"])
        st = es.stats()
        for k in ("signed", "requests", "bulk_docs", "bulks", "creates"):
            r["es_" + k] = st[k] - before[k]
    elif row.cluster:
        r["docs_during"] = es.docs() - (before["creates"] + before["bulk_docs"])
    return r


def measure_server(run, row, srv, es):
    """The measured run of a started lighttpd or Apache row.  Apache's
    processes are started by the load first; every row's warm-up takes the
    workers' start and their first posts (each worker's first hit waits up
    to 4 x TRACKPIXEL_SLOW_MS for a slow cluster before it leaves posting to
    its deliverer).  Cluster down: the warm-up runs with the stand-in up
    (the workers' connections open), which is then stopped."""
    opts = run.opts
    url = srv.url(row.path + "?" + QUERY)
    spawned = spawn_apache(run, srv, url, row.tag) if row.server == "apache" else 0
    warmup = None
    if row.cluster == "down":
        run.wrk.run(url, max(opts.warmup, 1), row.tag + "-warmup")
        es.stop()
        warmup = 0
    live = es if row.cluster and row.cluster != "down" else None
    before = live.stats() if live else None
    groups = server_groups(srv)
    if live:
        groups["stand-in"] = lambda: descendants(live.proc.pid)
    # The FastCGI processes are counted when the row's request goes to them.
    procs = srv.program_pids if row.path == "/pixel" else None
    r = run.wrk.measure(url, row.tag, warmup=warmup, cpu=CpuMeter(groups), procs=procs)
    r["warmup_requests"] += spawned
    r.update(cluster_figures(row, srv, es, before))
    return r


def run_row(run, row):
    """Measure one row of rows.ROWS: its figures (wrk's, the CPU meter's,
    the stand-in's)."""
    log("%d: %s" % (row.n, row.title))
    if row.server == "nginx":
        return run_nginx(run, row)
    if row.server == "peer":
        return run_peer(run, row)
    es = None
    if row.cluster:
        es = EsFast(run.stopper, run.work, delay_ms=CLUSTER_DELAY_MS[row.cluster]).start()
    try:
        srv = make_server(run, row, es, os.path.join(run.work, row.tag))
        stop = run.stopper.push(row.tag, lambda: stop_server(srv))
        try:
            srv.start()
            check_pixel(srv.port, row.path + "?" + QUERY, row.size)
            return measure_server(run, row, srv, es)
        finally:
            run.stopper.run(stop)
    finally:
        if es:
            es.stop()


def run_rows(run, results):
    """The rows opts.want()s, in rows.ORDER, into results {n: figures}."""
    for n in ORDER:
        if run.opts.want(n):
            results[n] = run_row(run, ROWS[n])


def ratio_repeats(run, results, a=3, b=4):
    """Rows a and b again, opts.repeats more times each, alternating, both
    servers up at once (the idle one costs nothing): on a shared machine a
    single ratio moves with whatever else runs, the median of several much
    less.  Appends to results[a]["repeats"] and results[b]["repeats"] (requests
    per second), and to their "repeats_fcgi_us" (CPU of the FastCGI processes
    per request, us)."""
    log("rows %d and %d again, %d times each, alternating" % (a, b, run.opts.repeats))
    es = EsFast(run.stopper, run.work).start()
    stops = []
    try:
        servers = []
        for n in (a, b):
            row = ROWS[n]
            srv = make_server(run, row, es if row.cluster else None,
                              os.path.join(run.work, row.tag + "-again"))
            stops.append(run.stopper.push(row.tag + " again",
                                          lambda srv=srv: stop_server(srv)))
            srv.start()
            check_pixel(srv.port, row.path + "?" + QUERY, row.size)
            servers.append((n, srv, srv.url(row.path + "?" + QUERY)))
        for i in range(run.opts.repeats):
            for n, srv, url in servers:
                g = "FastCGI processes"
                r = run.wrk.measure(url, "%d-again-%d" % (n, i + 1),
                                    cpu=CpuMeter({g: server_groups(srv)[g]}))
                results[n].setdefault("repeats", []).append(r["rps"])
                results[n].setdefault("repeats_fcgi_us", []).append(
                    sum(r["cpu"][g]) / r["requests"] * 1e6 if r["requests"] else 0.0)
    finally:
        for stop in reversed(stops):
            run.stopper.run(stop)
        es.stop()
