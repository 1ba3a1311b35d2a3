"""Helpers for the fault tests: a real nginx in front of the stand-in, small
file systems to fill up or make read-only, and a TAP runner that can skip.

Everything started here is stopped by the same object (a context manager),
also when the test fails; everything listens on loopback only."""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL  # noqa: E402

NGINX = "/usr/sbin/nginx"


class Skip(Exception):
    """A precondition is missing: the test is reported as TAP `# SKIP reason`."""


def run_tests(namespace):
    """tplib.run_tests, plus Skip: `ok N - name # SKIP reason`."""
    only = os.environ.get("TP_ONLY", "")     # run the tests whose name holds this
    tests = [(name, fn) for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn) and only in name]
    print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        t0 = time.monotonic()
        try:
            fn()
            print("ok %d - %s" % (i, name), flush=True)
        except Skip as e:
            print("ok %d - %s # SKIP %s" % (i, name, e), flush=True)
        except Exception:
            failed += 1
            print("not ok %d - %s" % (i, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print("# " + line, flush=True)
        print("# %s: %.1f s" % (name, time.monotonic() - t0), flush=True)
    sys.exit(1 if failed else 0)


# ------------------------------------------------------------ the worker

def env_for(url, **extra):
    """A worker's environment: no keys (the stand-ins here do not sign)."""
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_ES_URL": url,
           "TRACKPIXEL_CONNECT_TIMEOUT_MS": "500", "TRACKPIXEL_TIMEOUT_MS": "1500"}
    env.update(extra)
    return env


def hits(worker, n, query="i=%d", body=None, start=0):
    """n pixels through cgi-fcgi (POST with body when given); the request-ids."""
    ids = []
    for i in range(start, start + n):
        env = pixel_env(QUERY_STRING=query % i)
        if body is not None:
            env.update(REQUEST_METHOD="POST", CONTENT_TYPE="application/json")
        try:
            status, headers, got = cgi_fcgi(worker.port, env, body=body or b"")
        except AssertionError as e:
            time.sleep(0.5)        # what the worker said, e.g. a sanitizer's report
            raise AssertionError("%s; the worker's log ends: %r" % (e, worker.stderr()[-2000:]))
        eq((status, headers.get("Content-Length"), got), (200, "60", PIXEL), "pixel %d" % i)
        ids.append(headers["X-Request-Id"])
    return ids


def exactly(es, ids, timeout=30, what="documents", index=None):
    """Wait until the stand-in holds exactly these ids, once each."""
    want = sorted(ids)
    wait_for(lambda: len(es.docs(index)) >= len(want), timeout=timeout,
             what="%d %s (have %d)" % (len(want), what, len(es.docs(index))))
    time.sleep(0.5)                        # nothing more may arrive
    docs = es.docs(index)
    eq(sorted(d["id"] for d in docs), want, what + ": ids (no duplicates, none missing)")
    for d in docs:
        eq(d["source"]["context"]["request-id"], d["id"], "request-id = _id")
    return docs


STOPPING = re.compile(r"stopping: (\d+) hits, (\d+) delivered, (\d+) dead letters, (\d+) dropped")


def stopping_counts(stderr):
    """(hits, delivered, dead letters, dropped) of the worker's last stopping line."""
    found = STOPPING.findall(stderr)
    if not found:
        raise AssertionError("no 'stopping: N hits, ...' line in: %r" % stderr[-2000:])
    return tuple(int(x) for x in found[-1])


def lines_with(text, word):
    return [line for line in text.splitlines() if word in line]


def journals(spool):
    return sorted(f for f in os.listdir(spool)
                  if f.startswith("journal.") and f.endswith(".ndjson"))


def kill9(worker):
    worker.proc.kill()
    worker.proc.wait()
    worker.proc = None


def deadletters(spool):
    """The bytes of spool's dead-letter file (b"" when there is none)."""
    path = os.path.join(spool, "deadletter.ndjson")
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


def start_worker(stack, env, program=None):
    """A started tplib.Worker in a temporary directory; both go when the
    stack closes (the worker first)."""
    cwd = tempfile.mkdtemp(prefix="tp-faults-")
    stack.callback(shutil.rmtree, cwd, True)
    w = tplib.Worker(env, cwd=cwd, program=program)
    stack.enter_context(w)
    return w


def spool_status(env):
    p = subprocess.run([tplib.TRACKPIXEL, "--spool-status"], env=env, capture_output=True,
                       timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


# ------------------------------------------------------------ file systems

def _run(argv):
    p = subprocess.run(argv, capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace").strip()


class Tmpfs:
    """A tmpfs of `size` bytes mounted on a fresh directory (Skip if mount
    is not permitted); unmounted when the context ends."""

    def __init__(self, size):
        self.size = size
        self.path = None

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="tp-tmpfs-")
        rc, out = _run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0750" % self.size,
                        "tmpfs", self.path])
        if rc != 0:
            os.rmdir(self.path)
            raise Skip("cannot mount a tmpfs: %s" % out)
        return self

    def __exit__(self, *exc):
        _umount(self.path)
        os.rmdir(self.path)
        return False


class Ext4Image:
    """An ext4 file system in a loop-mounted image (Skip if not permitted);
    remount_ro() models errors=remount-ro.  Unmounted and removed at the end."""

    def __init__(self, size_mb=16):
        self.size_mb = size_mb
        self.path = None
        self.image = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="tp-ext4-")
        self.image = os.path.join(self.dir, "fs.img")
        self.path = os.path.join(self.dir, "mnt")
        os.mkdir(self.path)
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb * 1024 * 1024)
        rc, out = _run(["mkfs.ext4", "-q", "-F", self.image])
        if rc == 0:
            rc, out = _run(["mount", "-o", "loop", self.image, self.path])
        if rc != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise Skip("cannot loop-mount an ext4 image: %s" % out)
        return self

    def remount(self, how):
        rc, out = _run(["mount", "-o", "remount," + how, self.path])
        if rc != 0:
            raise AssertionError("remount %s: %s" % (how, out))

    def __exit__(self, *exc):
        _umount(self.path)
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def _umount(path):
    for _ in range(50):
        rc, out = _run(["umount", path])
        if rc == 0:
            return
        time.sleep(0.1)
    _run(["umount", "-l", path])


def fill(directory, leave_pages=0):
    """Fill the file system of directory with one file, then give back
    leave_pages pages of it; returns the filler's path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                if os.write(fd, chunk) < len(chunk):
                    break
            except OSError:
                break
        size = os.fstat(fd).st_size
        os.ftruncate(fd, max(0, size - size % 4096 - leave_pages * 4096))
    finally:
        os.close(fd)
    return path


# ------------------------------------------------------------ nginx

def nginx_conf(port, server_body, http_extra=""):
    """A whole nginx.conf: one process in the foreground, on 127.0.0.1:port."""
    return """
daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log error.log info;
events { worker_connections 256; }
http {
    default_type text/html;
    log_format tp '$request_method $uri $status';
    access_log access.log tp;
    client_body_temp_path body;
    proxy_temp_path proxy;
    fastcgi_temp_path fastcgi;
    uwsgi_temp_path uwsgi;
    scgi_temp_path scgi;
    %s
    server {
        listen 127.0.0.1:%d;
        %s
    }
}
""" % (http_extra, port, server_body)


def proxy_to(port, extra=""):
    """A server body passing everything to 127.0.0.1:port."""
    return """
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            %s
        }""" % (port, extra)


class Nginx:
    """nginx on a loopback port with a generated configuration; restart()
    swaps the configuration on the same port (a new process)."""

    def __init__(self):
        self.prefix = tempfile.mkdtemp(prefix="tp-nginx-")
        self.port = tplib.free_port()
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, server_body, http_extra=""):
        if not os.access(NGINX, os.X_OK):
            raise Skip("no nginx at " + NGINX)
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(self.port, server_body, http_extra))
        for _ in range(50):
            self.proc = subprocess.Popen([NGINX, "-p", self.prefix + "/", "-c", conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            try:
                wait_for(self._listening, timeout=20, what="nginx listening")
                return self
            except AssertionError:
                if self.proc.poll() is None:
                    raise AssertionError("nginx did not listen: " + self.error_log()[-500:])
                self.proc = None
                time.sleep(0.1)            # the port is still held: try again
        raise AssertionError("nginx did not start: " + self.error_log()[-500:])

    def _listening(self):
        if self.proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self, server_body, http_extra=""):
        self.stop()
        return self.start(server_body, http_extra)

    def access(self):
        """The access log: (method, uri, status) per request."""
        path = os.path.join(self.prefix, "access.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [tuple(line.split()) for line in f if line.strip()]

    def error_log(self):
        path = os.path.join(self.prefix, "error.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)
        return False


def all_json_lines(data, what):
    """Every line of data (bytes) is a whole JSON object and data ends with a newline."""
    if data and not data.endswith(b"\n"):
        raise AssertionError("%s does not end with a newline: ...%r" % (what, data[-80:]))
    out = []
    for n, line in enumerate(data.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError("%s line %d is not JSON: %r" % (what, n, line[:120]))
    return out


class TempDir:
    """A temporary directory, removed with what is in it."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="tp-faults-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False


@contextlib.contextmanager
def everything():
    """An ExitStack for one test: what is entered is left in reverse order."""
    with contextlib.ExitStack() as stack:
        yield stack
