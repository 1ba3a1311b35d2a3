"""Nothing lost: the journal, retries, redelivery, dead letters, clean stops.

Real hits through cgi-fcgi into real workers; the Elasticsearch stand-in is
stopped, answers errors, times out or closes connections; every case ends
with exactly N documents for N pixels, no duplicates."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
import fcgi_client  # noqa: E402
from tplib import eq, cgi_fcgi, pixel_env, wait_for, PIXEL, AWS_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402


def standin(port=0):
    return tplib.signed_standin(port=port)


def env_for(url, **extra):
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_ES_URL": url,
           "TRACKPIXEL_CONNECT_TIMEOUT_MS": "500", "TRACKPIXEL_TIMEOUT_MS": "1500"}
    env.update(AWS_KEYS)
    env.update(extra)
    return env


def hits(worker, n, query="i=%d"):
    """n pixels through cgi-fcgi; returns the request-ids received."""
    ids = []
    for i in range(n):
        status, headers, body = cgi_fcgi(worker.port, pixel_env(QUERY_STRING=query % i))
        eq((status, body), (200, PIXEL), "pixel %d" % i)
        ids.append(headers["X-Request-Id"])
    return ids


def exactly(es, ids, timeout=40, what="documents"):
    """Wait until the stand-in holds exactly these ids, once each."""
    want = sorted(ids)

    def settled():
        docs = es.docs()
        return docs if len(docs) >= len(want) else None
    docs = wait_for(settled, timeout=timeout, what="%d %s" % (len(want), what))
    time.sleep(0.3)                       # nothing more may arrive
    got = sorted(d["id"] for d in es.docs())
    eq(len(got), len(want), what + ": count")
    eq(got, want, what + ": ids (no duplicates, none missing)")
    for d in docs:
        eq(d["source"]["context"]["request-id"], d["id"], "request-id = _id")
    return docs


def spool_status(env):
    p = subprocess.run([tplib.TRACKPIXEL, "--spool-status"], env=env, capture_output=True,
                       timeout=30)
    eq(p.returncode, 0, "--spool-status exit")
    return p.stdout.decode()


def test_cluster_down_then_back_without_new_hits():
    port = tplib.free_port()
    env = env_for("http://127.0.0.1:%d" % port)
    with tplib.Worker(env) as w:
        ids = hits(w, 200)                      # cluster down: journal only
        out = spool_status(dict(env, TRACKPIXEL_SPOOL_DIR=w.spool))
        assert "pending: 200 entries" in out, out
        assert "journals: 1 (0 without a live worker)" in out, out
        es = standin(port)                      # back, and no further hit
        try:
            exactly(es, ids, timeout=30)
            assert any(r["path"] == "/_bulk" for r in es.requests()), "backlog sent with _bulk"
            assert all(r["sig_ok"] for r in es.requests()), "signatures"
        finally:
            es.stop()
        eq(w.stop(), 0, "exit status")
    out = spool_status(dict(env, TRACKPIXEL_SPOOL_DIR=w.spool))
    assert "journals: 0 (0 without a live worker)" in out and "pending: 0 entries" in out, out


def test_503_then_429_then_healthy():
    with standin() as es, tplib.Worker(env_for(es.url)) as w:
        def answered(status, n):
            wait_for(lambda: [r["status"] for r in es.requests()].count(status) >= n,
                     timeout=30, what="%d answers %d" % (n, status))
        es.mode(status=503, count=3)
        ids = hits(w, 10)
        answered(503, 3)                        # retried (with backoff) 3 times
        es.mode(status=429, count=3, retry_after=1)
        ids += hits(w, 10)
        answered(429, 3)
        exactly(es, ids)                        # then healthy: all of them, once
        statuses = [r["status"] for r in es.requests()]
        eq((statuses.count(503), statuses.count(429)), (3, 3), "errors answered")
        eq(w.stop(), 0, "exit status")


def test_bulk_items_failing_are_retried():
    with standin() as es, tplib.Worker(env_for(es.url)) as w:
        es.mode(status=503)                     # down until we say otherwise
        ids = hits(w, 30)
        seen = len(es.requests())
        es.mode(fail_items=7, count=1)          # the next _bulk: 7 items get 429
        exactly(es, ids)
        bulks = [r for r in es.requests()[seen:] if r["path"] == "/_bulk"]
        assert len(bulks) >= 2, "the failed items were sent again"
        eq(bulks[0]["status"], 200, "the partly failed _bulk")
        eq(w.stop(), 0, "exit status")


def test_bulk_item_rejected_goes_to_dead_letters():
    """One item of a _bulk refused for good (a mapping conflict): its dead
    letter carries Elasticsearch's reason, read from the filtered answer
    (filter_path keeps each item's status and error); the others are in."""
    with standin() as es, tplib.Worker(env_for(es.url)) as w:
        es.mode(status=503)                     # the hits wait in the journal
        ids = hits(w, 5)
        seen = len(es.requests())
        es.mode(reject_items=2, count=1)        # then one _bulk for all 5
        exactly(es, ids[2:])
        dl = os.path.join(w.spool, "deadletter.ndjson")
        lines = wait_for(lambda: os.path.exists(dl) and len(open(dl).read().splitlines()) == 2
                         and open(dl).read().splitlines(), what="2 dead letters")
        got = [json.loads(line) for line in lines]
        eq([(d["status"], d["_id"], d["reason"]) for d in got],
           [(400, i, "HTTP 400: mapper_parsing_exception: failed to parse field [date] of type "
                     "[date] in document with id '%s'" % i) for i in ids[:2]], "dead letters")
        eq([d["document"]["context"]["request-id"] for d in got], ids[:2], "their documents")
        # A retry answered 503 may still land after `seen` was counted.
        bulks = [r for r in es.requests()[seen:] if r["path"] == "/_bulk" and r["status"] != 503]
        eq(len(bulks), 1, "one _bulk")
        eq((bulks[0]["status"], bulks[0]["query"]),
           (200, "filter_path=errors%2Citems.%2A.status%2Citems.%2A.error"), "filtered answer asked")
        eq(w.stop(), 0, "exit status")


def test_timeouts_and_closed_connections_no_duplicates():
    with standin() as es, tplib.Worker(env_for(es.url)) as w:
        # The stand-in stores the document after its delay, but the worker
        # has given up (1.5 s): it sends it again and gets 409, not a copy.
        es.mode(delay_ms=2500, count=1)
        ids = hits(w, 1)
        es.mode(close=True, count=3)
        ids += hits(w, 5)
        es.mode()
        ids += hits(w, 5)
        exactly(es, ids)
        eq(w.stop(), 0, "exit status")


def test_sigkill_between_pixel_and_post():
    with standin() as es:
        d = tplib.Worker({}).cwd
        spool = os.path.join(d, "spool")
        env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=spool, TRACKPIXEL_TEST_PAUSE_MS="30000")
        with tplib.Worker(env, program=tplib.TRACKPIXEL_HOOKS) as w:
            ids = hits(w, 1)                    # the pixel is out...
            w.proc.kill()                       # ...and the worker dies before posting
            w.proc.wait()
            w.proc = None
        eq(es.docs(), [], "documents before recovery")
        env2 = env_for(es.url, TRACKPIXEL_SPOOL_DIR=spool)
        with tplib.Worker(env2) as w2:          # a fresh worker claims the orphan
            exactly(es, ids, timeout=30)
            eq(w2.stop(), 0, "exit status")
        assert "delivering" in w2.stderr() and "by a worker that is gone" in w2.stderr()
        eq([f for f in os.listdir(spool) if f.startswith("journal.")], [], "journals left")


class Clients:
    """n threads, each sending hits with send() until stop() or until the
    worker is gone (send returns None); ids: the request-ids of the pixels
    they got, in the order they got them."""

    def __init__(self, n, send):
        self.ids, self.lock, self.done = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(send,)) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self, send):
        while not self.done.is_set():
            got = send()
            if got is None:
                return                          # the worker is gone
            headers, body = got
            if body == PIXEL:
                with self.lock:
                    self.ids.append(headers["X-Request-Id"])

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join()


def test_sigterm_in_the_middle_of_a_load():
    with standin() as es:
        es.mode(delay_ms=20)                    # a cluster that takes a little time
        w = tplib.Worker(env_for(es.url)).start()

        def send():
            p = subprocess.run(["cgi-fcgi", "-bind", "-connect", "127.0.0.1:%d" % w.port],
                               env=pixel_env(), capture_output=True, timeout=30)
            if p.returncode != 0 or not p.stdout:
                return None
            return tplib.parse_cgi_response(p.stdout)[1:]
        clients = Clients(4, send)
        wait_for(lambda: len(clients.ids) >= 60, what="60 hits")
        eq(w.stop(signal.SIGTERM), 0, "exit status after SIGTERM")
        clients.stop()
        # Whatever it could not send is in its journal; the next worker sends it.
        w2 = tplib.Worker(env_for(es.url, TRACKPIXEL_SPOOL_DIR=w.spool)).start()
        try:
            exactly(es, clients.ids, timeout=30)
        finally:
            eq(w2.stop(), 0, "exit status")


def test_sigterm_under_continuous_load():
    """A stop while requests never stop coming: the loop accepts a waiting
    request without a wait first, with the stop signals blocked, and still
    lets them in at least every 50 ms.  Each request's body takes 50 ms, so
    with six clients the listening socket always has one waiting.  The
    worker answers what is queued for at most 2 s, closes its socket and
    exits 0 while the clients are still sending; every pixel has its
    document, once."""
    with standin() as es:
        w = tplib.Worker(env_for(es.url)).start()
        env = pixel_env(REQUEST_METHOD="POST", CONTENT_TYPE="application/json",
                        CONTENT_LENGTH="2")

        def send():
            try:
                return fcgi_client.slow_body_request(w.port, env, [(0.05, b"{}")],
                                                     timeout=10)[1:3]
            except OSError:
                return None                     # refused or reset
        clients = Clients(6, send)
        try:
            wait_for(lambda: len(clients.ids) >= 30, what="30 hits")
            w.proc.send_signal(signal.SIGTERM)
            try:
                rc = w.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                rc = "still running under load 20 s after SIGTERM"
            eq(rc, 0, "exit status after SIGTERM under load")
        finally:
            clients.stop()
            w.stop(signal.SIGKILL)
        docs = exactly(es, clients.ids)
        eq([d["source"]["body-json"] for d in docs], [{}] * len(clients.ids), "body-json")


def test_rejected_document_goes_to_dead_letters_and_replays():
    with standin() as es, tplib.Worker(env_for(es.url)) as w:
        es.mode(status=400, count=1)
        ids = hits(w, 1)
        dl = os.path.join(w.spool, "deadletter.ndjson")
        lines = wait_for(lambda: os.path.exists(dl) and open(dl).read().splitlines(),
                         what="the dead letter")
        eq(len(lines), 1, "dead letters")
        d = json.loads(lines[0])
        eq((d["status"], d["_id"], d["_index"]), (400, ids[0], "events"), "dead letter")
        assert d["reason"].startswith("HTTP 400: "), d["reason"]
        eq(d["document"]["context"]["request-id"], ids[0], "the document")
        eq(es.docs(), [], "documents")
        env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=w.spool)
        assert "dead letters: 1 (" in spool_status(env)
        # The mapping is fixed: replay.
        p = subprocess.run([tplib.TRACKPIXEL, "--replay", dl], env=env, capture_output=True,
                           timeout=30)
        eq((p.returncode, p.stdout.decode()),
           (0, "replayed %s: 1 accepted, 0 rejected, 0 not sent, 0 malformed lines\n" % dl),
           "--replay")
        exactly(es, ids)
        tplib.assert_no_secrets(p.stdout + p.stderr + w.stderr().encode())
        eq(w.stop(), 0, "exit status")


def test_replay_a_journal_file_reports_rejections():
    with standin() as es:
        d = tplib.Worker({}).cwd
        path = os.path.join(d, "journal.ndjson")
        with open(path, "w") as f:
            for i in (1, 2):
                f.write('{"create":{"_index":"events","_id":"id-%d"}}\n{"n":%d}\n' % (i, i))
            f.write("not json\n")
        es.mode(status=400, count=1)
        p = subprocess.run([tplib.TRACKPIXEL, "--replay", path], env=env_for(es.url),
                           capture_output=True, timeout=30)
        out = p.stdout.decode()
        eq(p.returncode, 1, "exit status")
        assert out.startswith("rejected id-1: HTTP 400: "), out
        assert out.endswith("replayed %s: 1 accepted, 1 rejected, 0 not sent, "
                            "1 malformed lines\n" % path), out
        eq([x["id"] for x in es.docs()], ["id-2"], "documents")


def test_spool_full_drops_are_counted_and_logged():
    port = tplib.free_port()
    big = "&".join("p%d=%s" % (k, "x" * 4000) for k in range(30))   # ~120 KB a hit
    env = env_for("http://127.0.0.1:%d" % port, TRACKPIXEL_SPOOL_MAX_MB="1")
    with tplib.Worker(env) as w:
        ids = hits(w, 12, query=big + "&i=%d")         # all answered
        log = wait_for(lambda: [l for l in w.stderr().splitlines() if "is full" in l],
                       what="the spool-full line")
        assert "(TRACKPIXEL_SPOOL_MAX_MB=1): hit " in log[0] and \
               "dropped, 1 dropped so far" in log[0], log[0]
        size = sum(os.path.getsize(os.path.join(w.spool, f)) for f in os.listdir(w.spool))
        assert size <= 1024 * 1024, size
        es = standin(port)
        try:
            docs = wait_for(lambda: len(es.docs()) >= 5 and es.docs(), timeout=30,
                            what="the kept documents")
            time.sleep(0.5)
            kept = len(es.docs())
            dropped = len(ids) - kept
            assert 1 <= dropped <= 5, (kept, dropped)
            eq(len({x["id"] for x in es.docs()}), kept, "no duplicates")
            assert {x["id"] for x in docs} <= set(ids)
        finally:
            es.stop()
        eq(w.stop(), 0, "exit status")
        assert "%d dropped" % dropped in w.stderr(), w.stderr()


def metric(client, name):
    """The value of the counter name in the worker's {mount}/_metrics."""
    status, _, body = client.request(pixel_env(PATH_INFO="/_metrics"))
    eq(status, 200, "/_metrics")
    found = re.findall(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    eq(len(found), 1, "one %s line" % name)
    return int(found[0])


def test_no_journal_memory_queue_holds_1000_then_drops():
    """Without a journal (TRACKPIXEL_SPOOL_DIR empty), 1000 documents wait in
    memory while the cluster is down; the hits after them get their pixel and
    are dropped, and counted.  When the cluster is back the 1000 arrive, once
    each.  The limit holds also for what the delivery thread has taken out
    to send: the first 100 hits are in its hands before the rest come."""
    port = tplib.free_port()
    env = env_for("http://127.0.0.1:%d" % port, TRACKPIXEL_SPOOL_DIR="")
    failed = 'trackpixel_es_requests_total{code="none"}'
    with tplib.Worker(env) as w, fcgi_client.FcgiClient(w.port) as fc:
        ids = []

        def pixels(start, end):
            for i in range(start, end):
                status, headers, body = fc.request(pixel_env(QUERY_STRING="i=%d" % i))
                eq((status, body), (200, PIXEL), "pixel %d" % i)
                ids.append(headers["X-Request-Id"])
        pixels(0, 100)
        # The loop's own post of the first hit failed; the thread's first
        # try takes the 100 waiting.
        wait_for(lambda: metric(fc, failed) >= 2, timeout=10,
                 what="the delivery thread's first try")
        pixels(100, 1005)
        eq(os.path.exists(w.spool), False, "no spool directory")
        eq(metric(fc, "trackpixel_dropped_total"), 5, "dropped while the cluster is down")
        eq(metric(fc, "trackpixel_documents_delivered_total"), 0, "delivered while down")
        es = standin(port)
        try:
            exactly(es, ids[:1000], timeout=60, what="documents that waited in memory")
            eq(metric(fc, "trackpixel_documents_delivered_total"), 1000, "delivered")
            eq(metric(fc, "trackpixel_dropped_total"), 5, "dropped")
        finally:
            es.stop()
        eq(w.stop(), 0, "exit status")
    assert "stopping: 1005 hits, 1000 delivered, 0 dead letters, 5 dropped" in w.stderr(), \
        w.stderr()[-1500:]


if __name__ == "__main__":
    tplib.run_tests(globals())
