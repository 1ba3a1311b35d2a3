#!/usr/bin/python3
"""Click redirects, the health and metrics endpoints and the other paths
under the mount: the real binary as a FastCGI worker driven by the real
cgi-fcgi client (the CGI variables a web server passes: SCRIPT_NAME is the
mount, PATH_INFO the rest), posting to the Elasticsearch stand-in.  The
shipped web-server configurations are tested in test_webservers.py."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL, Skip  # noqa: E402
import faultlib  # noqa: E402

ALLOW = "example.com,*.example.org"
NOT_FOUND = (404, {"Content-Type": "text/plain; charset=utf-8", "Content-Length": "10",
                   "Cache-Control": "no-store"}, b"not found\n")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# (name, QUERY_STRING, expected Location or the refusal's reason).  The
# query strings are as a browser sends them: the target percent-encoded
# where it has to be.
TARGETS = [
    ("allowed host", "u=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1%26c%3D2", "https://example.com/a?b=1&c=2"),
    ("allowed, not encoded", "u=https://example.com/x", "https://example.com/x"),
    ("http", "u=http://example.com/", "http://example.com/"),
    ("no path gets one", "u=https://example.com", "https://example.com/"),
    ("subdomain of a wildcard", "u=https://a.b.example.org:8443/x%2523y#frag",
     "https://a.b.example.org:8443/x%23y#frag"),
    ("upper case host", "u=https://EXAMPLE.com/", "https://EXAMPLE.com/"),
    ("punycode host", "u=https://xn--bcher-kva.example.org/", "https://xn--bcher-kva.example.org/"),
    ("first u wins", "u=https://example.com/1&u=https://evil.test/", "https://example.com/1"),
    ("percent-encoded host, decoded by libcurl", "u=https://%2565xample.com/", "https://example.com/"),
    ("missing", "v=1", "missing"),
    ("empty", "u=", "missing"),
    ("javascript:", "u=javascript:alert(document.cookie)", "scheme"),
    ("javascript: with slashes", "u=javascript://example.com/%250aalert(1)", "scheme"),
    ("data:", "u=data:text/html,<script>alert(1)</script>", "scheme"),
    ("ftp", "u=ftp://example.com/", "scheme"),
    ("scheme-relative", "u=//evil.test/", "not-absolute"),
    ("relative path", "u=/local/path", "not-absolute"),
    ("suffix of an allowed host", "u=https://example.com.evil.test/", "host-not-allowed"),
    ("allowed host as a prefix", "u=https://evilexample.com/", "host-not-allowed"),
    ("wildcard base itself", "u=https://example.org/", "host-not-allowed"),
    ("subdomain of an exact host", "u=https://www.example.com/", "host-not-allowed"),
    ("backslash before @", "u=https://evil.test%5C@example.com/", "bad-char"),
    ("backslash as a slash", "u=https://example.com%5C.evil.test/", "bad-char"),
    ("userinfo", "u=https://evil.test@example.com/", "userinfo"),
    ("user and password", "u=https://user:pw@example.com/", "userinfo"),
    ("CR LF header injection", "u=https://example.com%0d%0aSet-Cookie:x", "bad-char"),
    ("CR LF, encoded once more", "u=https://example.com%250d%250aSet-Cookie:x", "not-absolute"),
    ("NUL", "u=https://example.com/%00", "bad-char"),
    ("tab", "u=https://exa%09mple.com/", "bad-char"),
    ("space", "u=https://example.com/a b", "bad-char"),
    ("IDN host in Unicode", "u=https://b%C3%BCcher.example.org/", "bad-char"),
    ("IDN look-alike", "u=https://ex%D0%B0mple.com/", "bad-char"),
    ("percent-encoded dot", "u=https://evil%252etest/", "host-not-allowed"),
    ("percent-encoded allowed host with an evil suffix", "u=https://example.com%252eevil.test/",
     "host-not-allowed"),
    ("IPv6 literal", "u=https://[::1]/", "host-not-allowed"),
    ("IPv4 literal", "u=https://127.0.0.1/", "host-not-allowed"),
    ("bad port", "u=https://example.com:99999/", "not-absolute"),
    ("2 KiB + 1", "u=https://example.com/" + "a" * (2049 - len("https://example.com/")), "too-long"),
    ("10 KiB", "u=https://example.com/" + "a" * 10240, "too-long"),
]


def worker(env_extra, cwd=None):
    env = {"PATH": "/usr/bin:/bin"}
    env.update(env_extra)
    return tplib.Worker(env, cwd=cwd).start()


def output_docs(w):
    """The embedded default's documents (the worker's events.ndjson)."""
    path = os.path.join(w.cwd, "events.ndjson")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    return [json.loads(line) for line in lines[1::2]]


def get(w, path_info, qs="", method="GET", addr="127.0.0.1"):
    env = pixel_env(QUERY_STRING=qs, REQUEST_METHOD=method, REMOTE_ADDR=addr)
    if path_info is not None:
        env["PATH_INFO"] = path_info
    return cgi_fcgi(w.port, env)


# ------------------------------------------------------- redirects

def test_hostile_redirect_targets():
    """Every target of the table: a 302 to exactly the URL libcurl parsed,
    or a 400 with the reason as its text and no Location; each is recorded,
    a refusal with its reason in place of the query string (the refused
    target is not stored)."""
    w = worker({"TRACKPIXEL_REDIRECT_ALLOW": ALLOW})
    try:
        for name, qs, want in TARGETS:
            status, headers, body = get(w, "/r", qs)
            rid = headers.get("X-Request-Id", "")
            if not UUID.match(rid):
                raise AssertionError("%s: X-Request-Id %r" % (name, rid))
            if want.startswith("http"):
                eq((status, headers.get("Location"), headers.get("Cache-Control"), body),
                   (302, want, "no-store", b""), name)
            else:
                eq((status, "Location" in headers, headers.get("Cache-Control"), body),
                   (400, False, "no-store", ("redirect refused: %s\n" % want).encode()), name)
        w.stop()
        docs = output_docs(w)
        eq(len(docs), len(TARGETS), "documents")
        for (name, qs, want), doc in zip(TARGETS, docs):
            eq(doc["params"]["path"], {"proxy": "r"}, name + ": params.path")
            qsdoc = doc["params"]["querystring"]
            if want.startswith("http"):
                eq("u" in qsdoc, True, name + ": querystring.u recorded")
            else:
                eq(qsdoc, {"redirect-refused": want}, name + ": querystring")
        with open(os.path.join(w.cwd, "events.ndjson"), "rb") as f:
            eq(b"a" * 2049 in f.read(), False, "a long refused target stored")
    finally:
        w.stop()


def test_redirect_only_get_and_head():
    w = worker({"TRACKPIXEL_REDIRECT_ALLOW": ALLOW})
    try:
        status, headers, body = get(w, "/r", "u=https://example.com/", method="HEAD")
        eq((status, headers.get("Location"), body), (302, "https://example.com/", b""), "HEAD")
        status, headers, body = get(w, "/r", "u=https://example.com/", method="POST")
        eq((status, headers.get("Allow"), "Location" in headers, body),
           (405, "GET, HEAD", False, b"method not allowed\n"), "POST")
    finally:
        w.stop()
    eq(len(output_docs(w)), 1, "documents (the HEAD's)")


def test_no_allow_list_is_404_not_recorded():
    w = worker({})
    try:
        for qs in ("u=https://example.com/", "", "u=javascript:alert(1)"):
            eq(get(w, "/r", qs), NOT_FOUND, "/r?%s" % qs)
    finally:
        w.stop()
    eq(output_docs(w), [], "documents")


def test_bad_allow_list_stops_at_start():
    for bad in ("*", "*.", "example.com,*", "exa mple.com", "*.*.example.com", "https://example.com",
                "example.com,,example.org"):
        env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_REDIRECT_ALLOW": bad}
        p = subprocess.run([tplib.TRACKPIXEL, "--check"], env=env, capture_output=True,
                           timeout=20)
        eq(p.returncode != 0, True, "--check with %r" % bad)
        if b"TRACKPIXEL_REDIRECT_ALLOW" not in p.stdout + p.stderr:
            raise AssertionError("%r: the variable is not named: %r" % (bad, p.stderr))


# -------------------------------------------------- other paths

def test_other_paths():
    """No PATH_INFO and any path not reserved is the pixel, as always;
    /_<anything> is reserved: the same 404, not recorded."""
    w = worker({})
    try:
        for pi in (None, "", "/", "/open", "/campaigns/7/open.gif", "/r/x", "/rr", "/health"):
            status, headers, body = get(w, pi)
            eq((status, body), (200, PIXEL), "PATH_INFO %r" % pi)
        for pi in ("/_", "/_healthz", "/_metrics/", "/_health/x", "/_anything"):
            eq(get(w, pi), NOT_FOUND, "PATH_INFO %r" % pi)
    finally:
        w.stop()
    eq(len(output_docs(w)), 8, "documents (the pixels only)")


# ------------------------------------------------------------ admin

def test_admin_endpoints_from_disallowed_addresses():
    """_health and _metrics answer the admin addresses only; anyone else
    gets the bytes of an unknown path; neither is ever recorded."""
    w = worker({})
    try:
        for addr in ("127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"):
            for pi in ("/_health", "/_metrics"):
                status, headers, body = get(w, pi, addr=addr)
                eq(status, 200, "%s from %s" % (pi, addr))
        for addr in ("10.0.0.1", "192.0.2.1", "::2", "::ffff:10.0.0.1", "", "not-an-address",
                     "128.0.0.1"):
            for pi in ("/_health", "/_metrics"):
                eq(get(w, pi, addr=addr), NOT_FOUND, "%s from %r" % (pi, addr))
        eq(get(w, "/_health", method="POST")[0], 405, "POST _health")
    finally:
        w.stop()
    eq(output_docs(w), [], "documents")
    w = worker({"TRACKPIXEL_ADMIN_ALLOW": "10.0.0.0/8, 2001:db8::/32"})
    try:
        eq(get(w, "/_health", addr="10.200.1.1")[0], 200, "10.200.1.1 in 10.0.0.0/8")
        eq(get(w, "/_metrics", addr="2001:db8::7")[0], 200, "2001:db8::7")
        eq(get(w, "/_health"), NOT_FOUND, "127.0.0.1 not in the list")
    finally:
        w.stop()
    w = worker({"TRACKPIXEL_ADMIN_ALLOW": ""})
    try:
        eq(get(w, "/_health"), NOT_FOUND, "empty list: nobody")
    finally:
        w.stop()


def test_bad_admin_allow_stops_at_start():
    for bad in ("127.0.0.0/33", "::1/129", "localhost", "10.0.0.0/8,", "1.2.3.4/x"):
        env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_ADMIN_ALLOW": bad}
        p = subprocess.run([tplib.TRACKPIXEL, "--check"], env=env, capture_output=True,
                           timeout=20)
        eq(p.returncode != 0, True, "--check with %r" % bad)


# ------------------------------------------------- the exposition

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def parse_exposition(text):
    """A strict reader of the text format 0.0.4: {(name, ((label, value),
    ...)): float}.  Checks HELP and TYPE once per family and before its
    samples, a family's samples together, valid names, labels and values,
    and each histogram's buckets (increasing le, cumulative, +Inf =
    _count)."""
    if not text.endswith("\n"):
        raise AssertionError("the exposition does not end with a newline")
    out, types, helps, done, current = {}, {}, set(), set(), None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], line.split(" ")[2], line.split(" ", 3)[3:]
            if name in done or (kind == "HELP" and name in helps) or (kind == "TYPE" and name in types):
                raise AssertionError("%s %s again or after its samples" % (kind, name))
            if kind == "TYPE":
                if rest not in (["counter"], ["gauge"], ["histogram"], ["summary"], ["untyped"]):
                    raise AssertionError("TYPE %r" % line)
                types[name] = rest[0]
            else:
                helps.add(name)
            continue
        if line.startswith("#") or not line:
            raise AssertionError("line %r" % line)
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("sample %r" % line)
        name, labels, value = m.group(1), m.group(3), m.group(4)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(
            r"_(bucket|sum|count)$", "", name) in types and types[re.sub(
                r"_(bucket|sum|count)$", "", name)] == "histogram" else name
        if family not in types:
            raise AssertionError("%s has no TYPE before it" % name)
        if family != current:
            if current is not None:
                done.add(current)
            if family in done:
                raise AssertionError("%s's samples are not together" % family)
            current = family
        pairs = []
        if labels is not None:
            pos = 0
            while pos < len(labels):
                lm = LABEL.match(labels, pos)
                if not lm:
                    raise AssertionError("labels of %r" % line)
                pairs.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        v = float(value)
        key = (name, tuple(pairs))
        if key in out:
            raise AssertionError("%r twice" % (key,))
        out[key] = v
    for fam, kind in types.items():
        if kind != "histogram":
            continue
        buckets = [(float(dict(k[1])["le"]), v) for k, v in out.items() if k[0] == fam + "_bucket"]
        if [b[0] for b in buckets] != sorted(b[0] for b in buckets) or buckets[-1][0] != float("inf"):
            raise AssertionError("%s: buckets not in order or no +Inf" % fam)
        if any(a[1] > b[1] for a, b in zip(buckets, buckets[1:])):
            raise AssertionError("%s: buckets not cumulative" % fam)
        eq(buckets[-1][1], out[(fam + "_count", ())], fam + ": +Inf bucket = _count")
        if (fam + "_sum", ()) not in out:
            raise AssertionError(fam + "_sum missing")
    return out


REQUIRED = ["trackpixel_hits_total", "trackpixel_documents_delivered_total",
            "trackpixel_dead_letters_total", "trackpixel_dropped_total",
            "trackpixel_redirects_total", "trackpixel_backlog_bytes",
            "trackpixel_oldest_pending_seconds", "trackpixel_es_requests_total",
            "trackpixel_es_request_duration_seconds_bucket", "trackpixel_workers"]


def metrics(port):
    status, headers, body = cgi_fcgi(port, pixel_env(PATH_INFO="/_metrics"))
    eq((status, headers.get("Content-Type"), headers.get("Cache-Control")),
       (200, "text/plain; version=0.0.4", "no-store"), "metrics answer")
    eq(headers.get("Content-Length"), str(len(body)), "Content-Length")
    text = body.decode("utf-8")
    return text, parse_exposition(text)


def value(m, name, **labels):
    return m[(name, tuple(sorted(labels.items())))]


def total(m, name):
    return sum(v for k, v in m.items() if k[0] == name)


def health(port):
    status, headers, body = cgi_fcgi(port, pixel_env(PATH_INFO="/_health"))
    eq((headers.get("Content-Type"), headers.get("Cache-Control")),
       ("application/json", "no-store"), "health headers")
    return status, json.loads(body)


def test_metrics_format_promtool():
    """The exposition as Prometheus' own promtool reads it."""
    promtool = shutil.which("promtool")
    if not promtool:
        raise Skip("promtool not installed (Debian package prometheus)")
    w = worker({"TRACKPIXEL_REDIRECT_ALLOW": ALLOW})
    try:
        get(w, "/r", "u=https://example.com/")
        get(w, "/r", "u=https://evil.test/")
        text, _ = metrics(w.port)
    finally:
        w.stop()
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    eq((p.returncode, p.stdout + p.stderr), (0, b""), "promtool check metrics")


# ------------------------------------------- the whole server's figures

def setup_cluster():
    c = tplib.Ctx()
    c.es = tplib.signed_standin()
    c.dir = tempfile.mkdtemp(prefix="tp-clicks-")
    c.spool = os.path.join(c.dir, "spool")
    return c


def cluster_worker(c, n, **extra):
    env = tplib.worker_env(c.es, TRACKPIXEL_SPOOL_DIR=c.spool,
                           TRACKPIXEL_REDIRECT_ALLOW=ALLOW, **extra)
    cwd = os.path.join(c.dir, "w%d" % n)
    os.makedirs(cwd, exist_ok=True)
    return tplib.Worker(env, cwd=cwd).start()


def test_metrics_add_up_across_workers_and_exits():
    """Hits served concurrently by three workers sharing a spool, then one
    worker exits and another starts: the metrics any worker serves count
    exactly the hits and redirects served and the documents delivered, the
    exited worker's included; its stats file is merged into stats.total."""
    c = setup_cluster()
    workers = [cluster_worker(c, i) for i in range(3)]
    served = {"GET": 0, "POST": 0, "ok": 0, "host-not-allowed": 0}
    lock = threading.Lock()
    errors = []

    def hammer(w, n):
        try:
            for i in range(n):
                if i % 5 == 4:
                    status, headers, _ = get(w, "/r", "u=https://%s/" % (
                        "example.com" if i % 2 else "evil.test"))
                    key = "ok" if status == 302 else "host-not-allowed"
                else:
                    env = pixel_env(QUERY_STRING="i=%d" % i)
                    key = "GET"
                    if i % 3 == 0:
                        env.update(REQUEST_METHOD="POST", CONTENT_TYPE="application/json")
                        key = "POST"
                    status, headers, _ = cgi_fcgi(w.port, env, body=b'{"a":1}' if key == "POST" else b"")
                    eq(status, 200, "pixel")
                with lock:
                    served[key] += 1
        except Exception as e:     # noqa: BLE001 - reported below
            errors.append(repr(e))

    try:
        threads = [threading.Thread(target=hammer, args=(w, 40)) for w in workers for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        eq(errors, [], "errors while hammering")
        docs = sum(served.values())
        wait_for(lambda: len(c.es.docs()) >= docs, 30, "%d documents" % docs)
        eq(workers[0].stop(), 0, "first worker's exit status")
        workers.append(cluster_worker(c, 3))
        eq(health(workers[3].port)[0], 200, "the new worker answers (its stats file made)")
        # Deliveries are counted once the cluster answered: wait for them.
        wait_for(lambda: total(metrics(workers[1].port)[1],
                               "trackpixel_documents_delivered_total") >= docs, 20,
                 "delivered in the metrics")
        text, m = metrics(workers[1].port)
        eq(value(m, "trackpixel_hits_total", method="GET"), served["GET"], "GET hits")
        eq(value(m, "trackpixel_hits_total", method="POST"), served["POST"], "POST hits")
        eq(value(m, "trackpixel_hits_total", method="HEAD"), 0, "HEAD hits")
        eq(value(m, "trackpixel_redirects_total", result="ok"), served["ok"], "redirects")
        eq(value(m, "trackpixel_redirects_total", result="host-not-allowed"),
           served["host-not-allowed"], "refusals")
        eq(value(m, "trackpixel_documents_delivered_total"), docs, "delivered")
        eq(len(c.es.docs()), docs, "documents in the cluster")
        eq(value(m, "trackpixel_dropped_total"), 0, "dropped")
        eq(value(m, "trackpixel_workers"), 3, "workers")
        eq(total(m, "trackpixel_es_requests_total"),
           value(m, "trackpixel_es_request_duration_seconds_count"), "requests = histogram count")
        if total(m, "trackpixel_es_requests_total") < 1:
            raise AssertionError("no cluster request counted")
        for name in REQUIRED:
            if not any(k[0] == name for k in m):
                raise AssertionError(name + " missing")
        files = sorted(f for f in os.listdir(c.spool) if f.startswith("stats."))
        eq(len(files), 3 + 2, "stats files: 3 live workers, stats.lock, stats.total (%r)" % files)
        eq("stats.total" in files, True, "stats.total")
        status, h = health(workers[2].port)
        eq((status, h["status"], h["journal"], h["workers"], h["dropped"]), (200, "ok", "ok", 3, 0),
           "health")
        if h["last_delivery"] is None:
            raise AssertionError("no last delivery in %r" % h)
    finally:
        for w in workers:
            w.stop()
        c.es.stop()
        shutil.rmtree(c.dir, ignore_errors=True)


def test_health_lag_while_the_cluster_is_down():
    """A document pending longer than TRACKPIXEL_HEALTH_MAX_LAG_S makes the
    health 503 with the reason; delivered, it is 200 again."""
    c = setup_cluster()
    w = cluster_worker(c, 0, TRACKPIXEL_HEALTH_MAX_LAG_S="1")
    try:
        status, h = health(w.port)
        eq((status, h["status"], h["backlog_bytes"], h["oldest_pending_seconds"]),
           (200, "ok", 0, None), "health at start")
        c.es.mode(status=503)
        eq(get(w, None, "i=1")[0], 200, "pixel")
        time.sleep(2.2)
        status, h = health(w.port)
        eq((status, h["status"]), (503, "unavailable"), "health while down")
        if not re.match(r"oldest pending document is [2-9] s old \(limit 1 s\)$", h["reason"]):
            raise AssertionError("reason %r" % h["reason"])
        if h["backlog_bytes"] <= 0:
            raise AssertionError("backlog %r" % h)
        _, m = metrics(w.port)
        if value(m, "trackpixel_oldest_pending_seconds") < 2:
            raise AssertionError("oldest pending %r" % value(m, "trackpixel_oldest_pending_seconds"))
        if value(m, "trackpixel_es_requests_total", code="503") < 1:
            raise AssertionError("no 503 counted")
        c.es.mode()
        wait_for(lambda: health(w.port)[0] == 200, 30, "health back to 200")
        eq(len(c.es.docs()), 1, "documents")
    finally:
        w.stop()
        c.es.stop()
        shutil.rmtree(c.dir, ignore_errors=True)


def test_health_spool_full_or_read_only():
    """A full spool and a read-only one: 503 with the reason; the pixel is
    still served."""
    c = setup_cluster()
    try:
        try:
            fs = faultlib.Tmpfs(2 * 1024 * 1024).__enter__()
        except faultlib.Skip as why:
            raise Skip(str(why))
        with fs:
            c.spool = fs.path
            w = cluster_worker(c, 0)
            try:
                eq(health(w.port)[0], 200, "health at start")
                filler = faultlib.fill(fs.path)
                status, h = health(w.port)
                eq((status, h["status"], h["journal"], h["reason"]),
                   (503, "unavailable", "failing", "spool not writable: No space left on device"),
                   "health when full")
                eq(get(w, None)[0], 200, "pixel when full")
                os.unlink(filler)
                eq(health(w.port)[0], 200, "health with room again")
            finally:
                w.stop()
            # A worker's open journal keeps a file system from going
            # read-only: the next worker starts on the read-only spool.
            subprocess.run(["mount", "-o", "remount,ro", fs.path], check=True)
            w = cluster_worker(c, 2)
            try:
                status, h = health(w.port)
                eq((status, h["reason"]), (503, "spool not writable: Read-only file system"),
                   "health when read-only")
                _, m = metrics(w.port)
                eq(value(m, "trackpixel_spool_writable"), 0, "trackpixel_spool_writable")
                eq(get(w, None)[0], 200, "pixel when read-only")
            finally:
                w.stop()
                subprocess.run(["mount", "-o", "remount,rw", fs.path], check=True)
        c.spool = os.path.join(c.dir, "spool")
        w = cluster_worker(c, 1, TRACKPIXEL_SPOOL_MAX_MB="1")
        try:
            os.makedirs(w.spool, exist_ok=True)
            with open(os.path.join(w.spool, "damaged.filler"), "wb") as f:
                f.write(b"x" * (1024 * 1024))
            status, h = health(w.port)
            eq(status, 503, "health over TRACKPIXEL_SPOOL_MAX_MB")
            if not h["reason"].startswith("spool full: "):
                raise AssertionError("reason %r" % h["reason"])
        finally:
            w.stop()
    finally:
        c.es.stop()
        shutil.rmtree(c.dir, ignore_errors=True)


if __name__ == "__main__":
    tplib.run_tests(globals())
