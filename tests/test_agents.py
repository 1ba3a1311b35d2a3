"""Who is asking, end to end: the real binary as a FastCGI worker under the
real cgi-fcgi client, writing the embedded default's file.  The document's
top-level "agent" for real user agents and prefetch headers;
TRACKPIXEL_RECORD_BOTS=0 (the pixel served, no document, the count in the
stop line); TRACKPIXEL_AGENTS_FILE replacing the list, and its errors at
start."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL  # noqa: E402

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GMAIL = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
         "(via ggpht.com GoogleImageProxy)")
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"

# (request headers as CGI variables, the document's "agent")
CASES = [
    ({"HTTP_USER_AGENT": CHROME}, {"class": "browser", "name": ""}),
    ({"HTTP_USER_AGENT": FIREFOX}, {"class": "browser", "name": ""}),
    ({"HTTP_USER_AGENT": GOOGLEBOT}, {"class": "bot", "name": "Googlebot"}),
    ({"HTTP_USER_AGENT": "curl/8.5.0"}, {"class": "bot", "name": "curl"}),
    ({"HTTP_USER_AGENT": "python-requests/2.31.0"}, {"class": "bot", "name": "python-requests"}),
    ({"HTTP_USER_AGENT": GMAIL}, {"class": "email-proxy", "name": "GoogleImageProxy"}),
    ({"HTTP_USER_AGENT": YAHOO}, {"class": "email-proxy", "name": "YahooMailProxy"}),
    ({"HTTP_USER_AGENT": CHROME, "HTTP_SEC_PURPOSE": "prefetch;prerender"},
     {"class": "prefetch", "name": ""}),
    ({"HTTP_USER_AGENT": CHROME, "HTTP_PURPOSE": "prefetch"}, {"class": "prefetch", "name": ""}),
    ({"HTTP_USER_AGENT": FIREFOX, "HTTP_X_MOZ": "prefetch"}, {"class": "prefetch", "name": ""}),
    ({}, {"class": "unknown", "name": ""}),
    ({"HTTP_USER_AGENT": "Mozilla/5.0 (X11)"}, {"class": "unknown", "name": ""}),
]

STOPPING_TAIL = "damaged journal regions, 0 not recorded for Sec-GPC/DNT, %d bots not recorded"


def start_worker(**extra):
    cwd = tempfile.mkdtemp(prefix="tp-agents-")
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_OUTPUT": os.path.join(cwd, "events.ndjson")}
    env.update(extra)
    return tplib.Worker(env, cwd=cwd).start()


def documents(w, n):
    """The n documents of the worker's file by _id (waits for them; more
    than n fails)."""
    path = w.env["TRACKPIXEL_OUTPUT"]

    def read():
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        return lines if len(lines) >= 2 * n else None
    lines = wait_for(read, what="%d documents" % n)
    eq(len(lines), 2 * n, "lines in the file")
    docs = {}
    for action, doc in zip(lines[0::2], lines[1::2]):
        docs[json.loads(action)["create"]["_id"]] = json.loads(doc)
    return docs


def hit(w, headers):
    status, resp_headers, body = cgi_fcgi(w.port, pixel_env(**headers))
    eq(status, 200, "status")
    eq(body, PIXEL, "the pixel")
    return resp_headers["X-Request-Id"]


def stop(w):
    eq(w.stop(), 0, "exit status")
    return w.stderr()


def test_agent_in_every_document():
    w = start_worker()
    try:
        ids = [hit(w, headers) for headers, _ in CASES]
        docs = documents(w, len(CASES))
        for rid, (headers, want) in zip(ids, CASES):
            doc = docs[rid]
            eq(list(doc), ["body-json", "params", "stage-variables", "context", "agent",
                           "date", "@timestamp"], "document keys, in order")
            eq(doc["agent"], want, "agent of %r" % headers)
        assert (STOPPING_TAIL % 0) in stop(w), w.stderr()
    finally:
        w.stop()


def test_record_bots_0_serves_and_counts():
    w = start_worker(TRACKPIXEL_RECORD_BOTS="0")
    try:
        kept = [hit(w, {"HTTP_USER_AGENT": CHROME}), hit(w, {"HTTP_USER_AGENT": GMAIL}),
                hit(w, {"HTTP_USER_AGENT": FIREFOX, "HTTP_X_MOZ": "prefetch"}), hit(w, {})]
        bots = [hit(w, {"HTTP_USER_AGENT": GOOGLEBOT}), hit(w, {"HTTP_USER_AGENT": "curl/8.5.0"}),
                hit(w, {"HTTP_USER_AGENT": "python-requests/2.31.0"})]
        kept.append(hit(w, {"HTTP_USER_AGENT": CHROME}))
        docs = documents(w, len(kept))
        eq(sorted(docs), sorted(kept), "the documents: every hit but the bots'")
        eq(sorted(d["agent"]["class"] for d in docs.values()),
           ["browser", "browser", "email-proxy", "prefetch", "unknown"], "classes")
        err = stop(w)
        assert ("stopping: 8 hits, 5 delivered, 0 dead letters, 0 dropped, 0 journal errors, 0 "
                + STOPPING_TAIL % 3) in err, err
        for rid in bots:
            assert rid not in err, "a bot's hit logged: %s" % err
    finally:
        w.stop()


def test_agents_file_replaces_the_list():
    d = tempfile.mkdtemp(prefix="tp-agents-")
    path = os.path.join(d, "agents.txt")
    with open(path, "w") as f:
        f.write("# ours\nbot | PixelCheck | pixelcheck/\nemail-proxy | OurMail | ^ourmail\n")
    w = start_worker(TRACKPIXEL_AGENTS_FILE=path, TRACKPIXEL_RECORD_BOTS="0")
    try:
        a = hit(w, {"HTTP_USER_AGENT": "curl/8.5.0"})
        hit(w, {"HTTP_USER_AGENT": "Monitor PixelCheck/1.0"})
        c = hit(w, {"HTTP_USER_AGENT": "OurMail proxy"})
        docs = documents(w, 2)
        eq(docs[a]["agent"], {"class": "unknown", "name": ""}, "curl, not in the file")
        eq(docs[c]["agent"], {"class": "email-proxy", "name": "OurMail"}, "the file's proxy")
        assert (STOPPING_TAIL % 1) in stop(w), w.stderr()
    finally:
        w.stop()


def start_fails(agents_file, want):
    env = {"PATH": "/usr/bin:/bin", "REQUEST_METHOD": "GET", "TRACKPIXEL_SPOOL_DIR": "",
           "TRACKPIXEL_AGENTS_FILE": agents_file,
           "TRACKPIXEL_OUTPUT": os.path.join(tempfile.mkdtemp(prefix="tp-agents-"), "e.ndjson")}
    for name in tplib.SANITIZER_OPTIONS:
        if name in os.environ:
            env[name] = os.environ[name]
    p = subprocess.run([tplib.TRACKPIXEL], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    eq(p.returncode, 1, "exit status")
    eq(p.stdout, b"", "nothing served")
    err = p.stderr.decode("utf-8", "replace")
    assert err.rstrip("\n").endswith(want), err
    eq(err.count("\n"), 1, "one line")


def test_agents_file_errors_stop_the_start():
    d = tempfile.mkdtemp(prefix="tp-agents-")
    missing = os.path.join(d, "missing.txt")
    start_fails(missing, "TRACKPIXEL_AGENTS_FILE: %s: No such file or directory" % missing)
    bad = os.path.join(d, "bad.txt")
    with open(bad, "w") as f:
        f.write("bot | Fine | fine/\nrobot | X | xxx\n")
    start_fails(bad, "TRACKPIXEL_AGENTS_FILE: %s: line 2: the class is not bot, "
                "email-proxy or prefetch" % bad)
    start_fails(d, "TRACKPIXEL_AGENTS_FILE: %s: Is a directory" % d)


if __name__ == "__main__":
    tplib.run_tests(globals())
