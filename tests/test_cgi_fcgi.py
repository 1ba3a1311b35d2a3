"""trackpixel end to end: the real binary as a FastCGI worker, driven by the
real cgi-fcgi client, posting to the Elasticsearch stand-in, which verifies
every SigV4 signature with botocore."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL, AWS_KEYS, CONTEXT_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate, private",
            "Pragma": "no-cache", "Expires": "0"}


def worker_env(es, **extra):
    # These tests look at the loop's own posts: a busy test machine must not
    # make them batched (test_slow_cluster_... tests that).
    return tplib.worker_env(es, **dict({"TRACKPIXEL_STAGE_VAR_campaign": "winter",
                                        "TRACKPIXEL_API_ID": "api-7",
                                        "TRACKPIXEL_SLOW_MS": "60000"}, **extra))


def setup():
    return tplib.standin_and_worker(worker_env)


teardown = tplib.stop_standin_and_worker


def fresh(c):
    c.es.reset()
    c.es.mode()


def one_doc(c, request_id):
    docs = wait_for(lambda: c.es.docs() or None, what="the document")
    eq(len(docs), 1, "documents")
    d = docs[0]
    eq(d["index"], "events", "index")
    eq(d["id"], request_id, "_id")
    return d["source"]


def check_pixel_response(status, headers, body, with_body=True):
    eq(status, 200, "status")
    eq(headers.get("Content-Type"), "image/bmp", "Content-Type")
    eq(headers.get("Content-Length"), "60", "Content-Length")
    for k, v in NO_CACHE.items():
        eq(headers.get(k), v, k)
    assert UUID.match(headers.get("X-Request-Id", "")), headers
    eq(body, PIXEL if with_body else b"", "body")


def check_context(doc, method, request_id, user_agent="", user="", source_ip="127.0.0.1"):
    ctx = doc["context"]
    eq(list(ctx.keys()), CONTEXT_KEYS, "context keys")
    expected = {k: "" for k in CONTEXT_KEYS}
    expected.update({"http-method": method, "stage": "prod", "source-ip": source_ip,
                     "user": user, "user-agent": user_agent, "request-id": request_id,
                     "resource-path": "/pixel", "api-id": "api-7"})
    eq(ctx, expected, "context")


def check_dates(doc, before_ms, after_ms):
    ms = doc["date"]
    assert isinstance(ms, int) and before_ms <= ms <= after_ms, (ms, before_ms, after_ms)
    t = time.gmtime(ms // 1000)
    eq(doc["@timestamp"], time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000),
       "@timestamp")


def test_get_pixel_and_document(c):
    fresh(c)
    before = int(time.time() * 1000)
    status, headers, body = cgi_fcgi(c.worker.port, pixel_env(
        QUERY_STRING="utm_source=news&utm_campaign=winter+sale&x=%F0%9F%98%80&x=2&flag",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64)",
        HTTP_REFERER="https://example.com/page", HTTP_X_FORWARDED_FOR="203.0.113.9",
        HTTP_AUTHORIZATION="Basic c2VjcmV0", PATH_INFO="/campaigns/7"))
    after = int(time.time() * 1000)
    check_pixel_response(status, headers, body)
    rid = headers["X-Request-Id"]
    doc = one_doc(c, rid)
    eq(list(doc.keys()), ["body-json", "params", "stage-variables", "context", "agent",
                          "date", "@timestamp"], "top-level keys")
    eq(doc["body-json"], {}, "body-json")
    eq(doc["params"], {
        "path": {"proxy": "campaigns/7"},
        "querystring": {"utm_source": "news", "utm_campaign": "winter sale", "x": "2",
                        "flag": ""},
        "header": {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)",
                   "Referer": "https://example.com/page",
                   "X-Forwarded-For": "203.0.113.9"}}, "params")
    eq(doc["stage-variables"], {"campaign": "winter"}, "stage-variables")
    check_context(doc, "GET", rid, user_agent="Mozilla/5.0 (X11; Linux x86_64)")
    check_dates(doc, before, after)


def test_signature_verified_and_token_carried(c):
    fresh(c)
    status, headers, _ = cgi_fcgi(c.worker.port, pixel_env())
    eq(status, 200, "status")
    one_doc(c, headers["X-Request-Id"])
    reqs = tplib.settled_requests(c.es)
    eq(len(reqs), 1, "requests %r" % [(r["method"], r["path"], r["status"]) for r in reqs])
    r = reqs[0]
    # The loop posts its own hit (a _bulk would mean the deliverer took it).
    eq((r["method"], r["path"], r["status"]),
       ("POST", "/events/_create/" + headers["X-Request-Id"], 201), "request")
    eq(r["signed"], True, "signed")
    eq(r["sig_ok"], True, "sig_ok (" + str(r.get("sig_error")) + ")")
    eq(r["token_ok"], True, "session token")


def test_head(c):
    fresh(c)
    status, headers, body = cgi_fcgi(c.worker.port, pixel_env(REQUEST_METHOD="HEAD"))
    check_pixel_response(status, headers, body, with_body=False)
    doc = one_doc(c, headers["X-Request-Id"])
    check_context(doc, "HEAD", headers["X-Request-Id"])


def test_post_json_body(c):
    fresh(c)
    payload = {"event": "click", "n": 3, "nested": {"ok": True, "list": ["one", "two"]}}
    raw = json.dumps(payload).encode()
    status, headers, body = cgi_fcgi(c.worker.port, pixel_env(
        REQUEST_METHOD="POST", CONTENT_TYPE="application/json"), body=raw)
    check_pixel_response(status, headers, body)
    doc = one_doc(c, headers["X-Request-Id"])
    eq(doc["body-json"], payload, "body-json")
    eq(doc["params"]["header"], {"Content-Type": "application/json",
                                 "Content-Length": str(len(raw))}, "headers")
    check_context(doc, "POST", headers["X-Request-Id"])


def test_post_not_json_gives_empty_object(c):
    fresh(c)
    status, headers, _ = cgi_fcgi(c.worker.port, pixel_env(
        REQUEST_METHOD="POST", CONTENT_TYPE="text/plain"), body=b"ping=1")
    eq(status, 200, "status")
    eq(one_doc(c, headers["X-Request-Id"])["body-json"], {}, "body-json")


def test_other_method_405_not_recorded(c):
    fresh(c)
    status, headers, body = cgi_fcgi(c.worker.port, pixel_env(REQUEST_METHOD="PUT"))
    eq(status, 405, "status")
    eq(headers.get("Allow"), "GET, HEAD, POST", "Allow")
    eq(body, b"method not allowed\n", "body")
    # A GET after it is recorded, and is the only document.
    s2, h2, _ = cgi_fcgi(c.worker.port, pixel_env())
    eq(s2, 200, "status")
    one_doc(c, h2["X-Request-Id"])
    eq(len(tplib.settled_requests(c.es)), 1, "requests to the cluster")


def test_invalid_utf8_is_repaired_and_accepted(c):
    fresh(c)
    env = pixel_env(QUERY_STRING="q=caf%E9&%FF=1&e=%ED%A0%80")
    env[b"HTTP_USER_AGENT"] = b"bot\xff\x01"      # raw bytes, as Apache passes them
    status, headers, _ = cgi_fcgi(c.worker.port, env)
    eq(status, 200, "status")
    doc = one_doc(c, headers["X-Request-Id"])
    eq(doc["params"]["querystring"], {"q": "caf\ufffd", "\ufffd": "1", "e": "\ufffd\ufffd\ufffd"},
       "querystring")
    eq(doc["params"]["header"], {"User-Agent": "bot\ufffd\x01"}, "header")
    eq(doc["context"]["user-agent"], "bot\ufffd\x01", "user-agent")


def test_many_hits_one_connection(c):
    fresh(c)
    ids = set()
    n = 40
    for i in range(n):
        status, headers, body = cgi_fcgi(c.worker.port, pixel_env(QUERY_STRING="i=%d" % i))
        eq((status, body), (200, PIXEL), "pixel %d" % i)
        ids.add(headers["X-Request-Id"])
    eq(len(ids), n, "distinct request ids")
    docs = wait_for(lambda: len(c.es.docs()) >= n and c.es.docs(), what="%d documents" % n)
    eq(len(docs), n, "documents")
    eq({d["id"] for d in docs}, ids, "document ids")
    eq(sorted(int(d["source"]["params"]["querystring"]["i"]) for d in docs), list(range(n)), "i")
    # 40 hits over at most two kept-alive connections: the loop's own posts
    # share one, the deliverer's _bulk requests another.  Which of them
    # carries a hit depends on timing (the next cgi-fcgi may already be
    # waiting when the loop decides, and then the deliverer takes the hit).
    reqs = tplib.settled_requests(c.es)
    creates = [r for r in reqs if r["path"].startswith("/events/_create/")]
    bulks = [r for r in reqs if r["path"] == "/_bulk"]
    eq(len(creates) + len(bulks), len(reqs), "only creates and _bulk")
    eq(len({r["conn"] for r in creates}), 1 if creates else 0,
       "connections of the loop's %d posts" % len(creates))
    eq(len({r["conn"] for r in bulks}), 1 if bulks else 0, "connections of the deliverer")


def test_slow_cluster_does_not_delay_pixel(c):
    fresh(c)
    c.es.mode(delay_ms=2000)
    # Its own worker: a worker that saw a slow cluster leaves the next hits
    # to its deliverer (in batches) until the cluster is fast again.
    with tplib.Worker(worker_env(c.es, TRACKPIXEL_SLOW_MS="1000")) as w:
        status, headers, body = cgi_fcgi(w.port, pixel_env())
        # The pixel is back while the cluster still sits on the document:
        # the stand-in stores it only after its delay.
        eq((status, body), (200, PIXEL), "pixel")
        eq(c.es.docs(), [], "documents while the cluster is still answering")
        one_doc(c, headers["X-Request-Id"])
        # The next hit, while the cluster is slow, is not posted by the loop
        # but by the deliverer with _bulk.
        status, headers, body = cgi_fcgi(w.port, pixel_env())
        eq((status, body), (200, PIXEL), "second pixel")
        wait_for(lambda: len(c.es.docs()) == 2, what="the second document")
        eq([r["path"] for r in tplib.settled_requests(c.es)],
           ["/events/_create/" + c.es.docs()[0]["id"], "/_bulk"], "requests")
        eq(w.stop(), 0, "exit status")


def test_rejected_document_is_logged_without_secrets(c):
    fresh(c)
    before = len(c.worker.stderr())
    c.es.mode(status=400, count=1)
    status, headers, body = cgi_fcgi(c.worker.port, pixel_env())
    eq((status, body), (200, PIXEL), "pixel despite the rejection")
    rid = headers["X-Request-Id"]
    line = wait_for(lambda: [l for l in c.worker.stderr()[before:].splitlines() if rid in l],
                    what="the log line")[0]
    assert "HTTP 400" in line and "rejected" in line, line
    tplib.assert_no_secrets(c.worker.stderr(), "trackpixel's stderr")


def test_wrong_secret_gets_403_logged(c):
    es = c.es
    env = worker_env(es, AWS_SECRET_ACCESS_KEY="not-the-right-secret-key-000000000000000")
    fresh(c)
    with tplib.Worker(env) as w:
        status, headers, body = cgi_fcgi(w.port, pixel_env())
        eq((status, body), (200, PIXEL), "pixel")
        line = wait_for(lambda: [l for l in w.stderr().splitlines() if "HTTP 403" in l],
                        what="the 403 line")[0]
        assert "signature" in line, line
        assert "not-the-right-secret" not in w.stderr()
        eq(w.stop(), 0, "exit status")
    eq(c.es.docs(), [], "documents")


def test_legacy_type(c):
    fresh(c)
    with tplib.Worker(worker_env(c.es, TRACKPIXEL_ES_TYPE="event",
                                 TRACKPIXEL_ES_INDEX="pixels")) as w:
        status, headers, _ = cgi_fcgi(w.port, pixel_env())
        eq(status, 200, "status")
        docs = wait_for(lambda: c.es.docs() or None, what="the document")
        eq((docs[0]["index"], docs[0]["type"], docs[0]["id"]),
           ("pixels", "event", headers["X-Request-Id"]), "index/type/id")
        r = tplib.settled_requests(c.es)[0]
        eq((r["path"], r["query"]), ("/pixels/event/" + headers["X-Request-Id"],
                                     "op_type=create"), "request")
        eq(w.stop(), 0, "exit status")


def test_opensearch_serverless_signs_payload(c):
    with Standin(access_key=AWS_KEYS["AWS_ACCESS_KEY_ID"],
                 secret_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"], service="aoss",
                 require_signature=True) as es:
        env = worker_env(es, TRACKPIXEL_AWS_SERVICE="aoss")
        del env["AWS_SESSION_TOKEN"]
        with tplib.Worker(env) as w:
            status, headers, _ = cgi_fcgi(w.port, pixel_env())
            eq(status, 200, "status")
            wait_for(lambda: es.docs() or None, what="the document")
            r = tplib.settled_requests(es)[0]
            eq((r["sig_ok"], r["content_sha256_header"]), (True, True), "aoss signature")
            eq(w.stop(), 0, "exit status")


def test_basic_auth_from_url(c):
    with Standin(basic_user="elastic", basic_password="pw-for-test") as es:
        env = {"PATH": "/usr/bin:/bin",
               "TRACKPIXEL_ES_URL": "http://elastic:pw-for-test@127.0.0.1:%d" % es.port}
        with tplib.Worker(env) as w:
            status, headers, _ = cgi_fcgi(w.port, pixel_env())
            eq(status, 200, "status")
            docs = wait_for(lambda: es.docs() or None, what="the document")
            eq(docs[0]["id"], headers["X-Request-Id"], "id")
            eq(tplib.settled_requests(es)[0]["signed"], False, "not signed")
            eq(w.stop(), 0, "exit status")


def test_cluster_down_pixel_still_served(c):
    port = tplib.free_port()
    env = worker_env(c.es, TRACKPIXEL_ES_URL="http://127.0.0.1:%d" % port)
    with tplib.Worker(env) as w:
        status, headers, body = cgi_fcgi(w.port, pixel_env())
        eq((status, body), (200, PIXEL), "pixel")
        line = wait_for(lambda: [l for l in w.stderr().splitlines()
                                 if headers["X-Request-Id"] in l], what="log line")[0]
        want = "cluster unavailable, hit %s waits in the journal: no answer: " % (
            headers["X-Request-Id"])
        assert want in line, line
        eq(w.stop(), 0, "exit status")


def test_deliverer_runs_below_the_loop(c):
    """Two threads: the loop at the process's nice value, the delivery
    thread at nice 10 (when the cores are busy, the pixel goes first)."""
    with tplib.Worker(worker_env(c.es)) as w:
        status, _, _ = cgi_fcgi(w.port, pixel_env())
        eq(status, 200, "status")
        pid = w.proc.pid

        def nices():
            out = {}
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(tid)] = int(fields[16])       # field 19: nice
            return out

        # ThreadSanitizer runs a thread of its own in the process, at the
        # process's nice value.
        tsan = os.environ.get("TP_TSAN") == "yes"
        got = wait_for(lambda: len(nices()) == 2 + tsan and nices(), what="the threads")
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        eq(got[pid], base, "the loop's nice value")
        eq(sorted(n for t, n in got.items() if t != pid), [base] * tsan + [min(base + 10, 19)],
           "the deliverer's (and ThreadSanitizer's)")
        eq(w.stop(), 0, "exit status")


def test_sigterm_exits_cleanly(c):
    with tplib.Worker(worker_env(c.es)) as w:
        status, _, _ = cgi_fcgi(w.port, pixel_env())
        eq(status, 200, "status")
        eq(w.stop(signal.SIGTERM), 0, "exit status after SIGTERM")
    with tplib.Worker(worker_env(c.es)) as w:
        status, _, _ = cgi_fcgi(w.port, pixel_env())   # running, handlers set
        eq(status, 200, "status")
        eq(w.stop(signal.SIGUSR1), 0, "exit status after SIGUSR1")


def test_bad_configuration_stops_at_start(c):
    env = worker_env(c.es, TRACKPIXEL_TIMEOUT_MS="5s")
    with tplib.Worker(env) as w:
        rc = w.proc.wait(timeout=10)
        w.proc = None
        eq(rc, 1, "exit status")
        eq(w.stderr().strip().split(": ", 1)[1],
           "TRACKPIXEL_TIMEOUT_MS: not a number from 1 to 3600000", "message")


def test_embedded_default_file_from_two_workers(c):
    d = tempfile.mkdtemp(prefix="tp-out-")
    out = os.path.join(d, "events.ndjson")
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_OUTPUT": out}
    n = 100
    with tplib.Worker(env) as w1, tplib.Worker(env) as w2:
        ids = []

        def hammer(w):
            for i in range(n):
                _, h, _ = cgi_fcgi(w.port, pixel_env(QUERY_STRING="pad=" + "x" * 3000))
                ids.append(h["X-Request-Id"])
        threads = [threading.Thread(target=hammer, args=(w,)) for w in (w1, w2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        eq(w1.stop(), 0, "exit 1")
        eq(w2.stop(), 0, "exit 2")
    with open(out, "rb") as f:
        lines = f.read().split(b"\n")
    eq(lines[-1], b"", "file ends with a newline")
    lines = lines[:-1]
    eq(len(lines), 4 * n, "lines")
    seen = []
    for action, doc in zip(lines[0::2], lines[1::2]):
        a = json.loads(action)
        src = json.loads(doc)
        eq(list(a.keys()), ["create"], "action")
        eq(a["create"]["_index"], "events", "_index")
        eq(a["create"]["_id"], src["context"]["request-id"], "_id")
        seen.append(a["create"]["_id"])
    eq(sorted(seen), sorted(ids), "ids in the file")


def test_plain_cgi_mode(c):
    fresh(c)
    env = worker_env(c.es)
    env.update(pixel_env(QUERY_STRING="mode=cgi"))
    p = subprocess.run([tplib.TRACKPIXEL], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    eq(p.returncode, 0, "exit status")
    status, headers, body = tplib.parse_cgi_response(p.stdout)
    check_pixel_response(status, headers, body)
    doc = one_doc(c, headers["X-Request-Id"])
    eq(doc["params"]["querystring"], {"mode": "cgi"}, "querystring")


if __name__ == "__main__":
    tplib.run_tests(globals(), setup=setup, teardown=teardown)
