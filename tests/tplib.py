"""Shared helpers for trackpixel's integration tests.

Tests are plain functions named test_*; run_tests() runs them in file order and
prints TAP (automake's tap-driver counts each one).  Nothing here talks to any
address but loopback.
"""
import os
import re
import sys
import traceback

BUILDDIR = os.environ.get("TP_BUILDDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
SRCDIR = os.environ.get("TP_SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
TESTDIR = os.path.join(SRCDIR, "tests")
PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")


class Skip(Exception):
    """Raised by a test whose precondition is missing: TAP "ok N - name # SKIP reason"."""


# What a sanitizer prints when it finds something (ThreadSanitizer's races,
# AddressSanitizer's and LeakSanitizer's errors, UndefinedBehaviorSanitizer's
# "file:line:col: runtime error:").
SANITIZER_REPORT = re.compile(
    r"^(?:==\d+==)?(?:WARNING|ERROR): (?:ThreadSanitizer|AddressSanitizer|LeakSanitizer)\b"
    r"|^SUMMARY: \w*Sanitizer:|^\S+:\d+:\d+: runtime error: ", re.M)
_watched = {}                     # log path -> bytes of it already looked at


def watch_log(path):
    """Look for sanitizer reports in what is appended to path from now on
    (a worker's stderr, a web server's error log): run_tests fails the test
    during which one appears."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    _watched.setdefault(path, size)


def new_sanitizer_reports():
    """[(path, text)] of the sanitizer reports appended to the watched logs
    since the last call."""
    found = []
    for path, seen in list(_watched.items()):
        try:
            with open(path, "rb") as f:
                f.seek(seen)
                data = f.read()
        except OSError:
            continue
        _watched[path] = seen + len(data)
        text = data.decode("utf-8", "replace")
        m = SANITIZER_REPORT.search(text)
        if m:
            found.append((path, text[max(0, m.start() - 200):m.start() + 3000]))
    return found


def _report_failure(lines):
    for line in lines:
        print("# " + line, flush=True)


def _sanitizer_lines(reports):
    out = []
    for path, text in reports:
        out.append("sanitizer report in %s:" % path)
        out.extend(text.splitlines())
    return out


def collect(namespace):
    """[(name, function)] of the test_* functions of namespace (a module's
    globals()), in file order."""
    return [(name, fn) for name, fn in namespace.items()
            if name.startswith("test_") and callable(fn)]


def run_tests(namespace, setup=None, teardown=None):
    """Run every test_* function of namespace as TAP (see run_groups)."""
    run_groups([(None, collect(namespace), setup, teardown)])


def run_groups(groups):
    """Run groups of tests as one TAP stream and exit 0 when all passed.
    Each group is (label, [(name, fn)], setup, teardown): setup() makes the
    context each fn gets (none when setup is None), teardown(ctx) ends it;
    with a label, the TAP names are "name (label)".  A test passes when it
    returns and no watched log got a sanitizer report meanwhile; tplib.Skip
    marks it skipped.  The plan comes last, so that a report seen only at a
    teardown can be one more (failed) result."""
    state = {"n": 0, "failed": 0}

    def result(ok, name, lines=(), directive=""):
        state["n"] += 1
        if not ok:
            state["failed"] += 1
        print("%s %d - %s%s" % ("ok" if ok else "not ok", state["n"], name, directive),
              flush=True)
        _report_failure(lines)

    try:
        for label, tests, setup, teardown in groups:
            _run_group(label, tests, setup, teardown, result)
    finally:
        print("1..%d" % state["n"], flush=True)
    sys.exit(1 if state["failed"] else 0)


def _run_group(label, tests, setup, teardown, result):
    named = (lambda name: "%s (%s)" % (name, label)) if label else (lambda name: name)
    ctx = None
    try:
        if setup:
            try:
                ctx = setup()
            except Exception:
                result(False, named("setup"), traceback.format_exc().splitlines() +
                       _sanitizer_lines(new_sanitizer_reports()))
                return
        for name, fn in tests:
            try:
                if ctx is None:
                    fn()
                else:
                    fn(ctx)
                reports = new_sanitizer_reports()
                result(not reports, named(name), _sanitizer_lines(reports))
            except Skip as why:
                result(True, named(name), directive=" # SKIP %s" % why)
            except Exception:
                result(False, named(name), traceback.format_exc().splitlines() +
                       _sanitizer_lines(new_sanitizer_reports()))
    finally:
        if teardown and ctx is not None:
            try:
                teardown(ctx)
            except Exception:
                result(False, named("teardown"), traceback.format_exc().splitlines())
        reports = new_sanitizer_reports()
        if reports:
            result(False, named("no sanitizer report at teardown"), _sanitizer_lines(reports))


def eq(actual, expected, what=""):
    """assert actual == expected, with both shown on failure."""
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what or "value", expected, actual))


# ---------------------------------------------------------------- processes
import signal
import socket
import subprocess
import tempfile
import time

TRACKPIXEL = os.path.join(BUILDDIR, "src", "trackpixel")
SANITIZER_OPTIONS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")

# Credentials for the stand-in only (the AWS documentation's example keys).
AWS_KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLE/Token+with/slashes=",
    "AWS_REGION": "us-east-1",
}
SECRETS = (AWS_KEYS["AWS_SECRET_ACCESS_KEY"], AWS_KEYS["AWS_SESSION_TOKEN"])

PIXEL = bytes.fromhex(
    "424d3c000000000000003600000028000000010000000100000001001800000000000600"
    "000027000000270000000000000000000000ffffffff0000")
assert len(PIXEL) == 60


def run_trackpixel(args, env, timeout=30):
    """trackpixel ARGS (a command: --check, --setup, --replay, ...) with env
    and a plain PATH, no input: (exit status, stdout, stderr)."""
    p = subprocess.run([TRACKPIXEL] + args, env=dict(env, PATH="/usr/bin:/bin"),
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=20.0, what="condition", interval=0.05):
    """Poll predicate() every interval seconds until it returns a true value
    (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def assert_no_secrets(text, what="output"):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for s in SECRETS:
        if s in text:
            raise AssertionError("a secret appeared in " + what)


def handles_sigterm(pid):
    """Whether pid has a SIGTERM handler (SigCgt in /proc/pid/status): a
    trackpixel that does is past its start, and ready to take hits.  None
    when pid is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        return None
    return False


class Worker:
    """trackpixel as a FastCGI worker on a loopback socket passed as fd 0,
    exactly as spawn-fcgi, mod_fcgid and lighttpd hand it over."""

    def __init__(self, env, cwd=None, program=None, wrapper=None):
        self.port = None
        self.program = program or TRACKPIXEL
        # A command line the program runs under, e.g. ["valgrind", "-q"].
        self.wrapper = list(wrapper or [])
        self.cwd = cwd or tempfile.mkdtemp(prefix="tp-worker-")
        self.env = dict(env)
        # Never the system spool: each worker gets one in its directory
        # unless the test names one.
        self.env.setdefault("TRACKPIXEL_SPOOL_DIR", os.path.join(self.cwd, "spool"))
        self.spool = self.env["TRACKPIXEL_SPOOL_DIR"]
        # Never the machine's configuration file either, unless the test
        # names one.
        self.env.setdefault("TRACKPIXEL_CONFIG", "")
        # The sanitizers' options of the test run reach the worker whatever
        # environment the test gives it.
        for name in SANITIZER_OPTIONS:
            if name in os.environ:
                self.env.setdefault(name, os.environ[name])
        self.stderr_path = os.path.join(self.cwd, "stderr.log")
        self.proc = None

    def start(self, port=0):
        watch_log(self.stderr_path)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.wrapper + [self.program], stdin=sock.fileno(),
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         env=self.env, cwd=self.cwd)
        sock.close()
        # A SIGTERM before the program has installed its handler would kill
        # it outright: a test's stop() right after start() (slow under the
        # sanitizers and valgrind) must find it ready.
        deadline = time.monotonic() + 30
        while (self.proc.poll() is None and not handles_sigterm(self.proc.pid)
               and time.monotonic() < deadline):
            time.sleep(0.01)
        return self

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("trackpixel did not exit on signal %d" % sig)
        self.proc = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def parse_cgi_response(raw):
    """CGI response bytes -> (status int, headers dict, body bytes)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("no header/body separator in %r" % raw[:200])
    headers = {}
    status = 200
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        value = value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers[name] = value
    return status, headers, body


def cgi_fcgi(port, cgi_env, body=b""):
    """One request through the real cgi-fcgi client: the CGI variables are
    exactly cgi_env (cgi-fcgi passes its whole environment as FastCGI params)."""
    env = dict(cgi_env)
    if body and "CONTENT_LENGTH" not in env:
        env["CONTENT_LENGTH"] = str(len(body))
    p = subprocess.run(["cgi-fcgi", "-bind", "-connect", "127.0.0.1:%d" % port],
                       input=body, env=env, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("cgi-fcgi failed (exit %d): %r; it read %r" %
                             (p.returncode, p.stderr[:300], p.stdout[:200]))
    return parse_cgi_response(p.stdout)


def pixel_env(**extra):
    """The CGI variables a web server sets for GET /pixel from 127.0.0.1."""
    env = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
           "SCRIPT_NAME": "/pixel", "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1",
           "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "localhost",
           "SERVER_PORT": "80"}
    env.update(extra)
    return env

TRACKPIXEL_HOOKS = os.path.join(BUILDDIR, "tests", "trackpixel-hooks")

# The context keys of API Gateway's passthrough template, in its order.
CONTEXT_KEYS = ["account-id", "api-id", "api-key", "authorizer-principal-id", "caller",
                "cognito-authentication-provider", "cognito-authentication-type",
                "cognito-identity-id", "cognito-identity-pool-id", "http-method", "stage",
                "source-ip", "user", "user-agent", "user-arn", "request-id", "resource-id",
                "resource-path"]


def carriers(es, rid):
    """The stand-in's logged requests that carried document rid: its own
    _create (the worker's loop) or a _bulk holding it (the deliverer)."""
    return [r for r in es.requests()
            if r["path"].endswith("/" + rid) or
            (r["path"].endswith("/_bulk") and '"_id":"%s"' % rid in r.get("body", ""))]


def settled_requests(es, timeout=10.0):
    """The stand-in's request log once every document it holds has the
    request that carried it logged: it stores a document before it logs the
    request, so right after a document appears its request may not be
    there yet."""
    wait_for(lambda: all(carriers(es, d["id"]) for d in es.docs()), timeout,
             "the requests that carried the documents to be logged")
    return es.requests()


def signed_standin(**opts):
    """A started Elasticsearch stand-in that requires SigV4 with AWS_KEYS
    (and their session token unless opts say otherwise)."""
    from es_standin import Standin
    kw = dict(access_key=AWS_KEYS["AWS_ACCESS_KEY_ID"],
              secret_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
              session_token=AWS_KEYS["AWS_SESSION_TOKEN"], require_signature=True)
    kw.update(opts)
    return Standin(**kw).start()


class Ctx:
    """What a test file's setup hands to each of its tests."""


def worker_env(es, **extra):
    """A worker's environment: posting to stand-in es, signed with AWS_KEYS
    (extra adds or overrides variables)."""
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_ES_URL": es.url}
    env.update(AWS_KEYS)
    env.update(extra)
    return env


def standin_and_worker(env_for):
    """A setup for run_tests: c.es, a started signed stand-in, and c.worker,
    a worker started with env_for(c.es)."""
    c = Ctx()
    c.es = signed_standin()
    try:
        c.worker = Worker(env_for(c.es)).start()
    except Exception:
        c.es.stop()
        raise
    return c


def stop_standin_and_worker(c):
    """The teardown that goes with standin_and_worker."""
    try:
        if c.worker.proc is not None:
            c.worker.stop()
    finally:
        c.es.stop()
