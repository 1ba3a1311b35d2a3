"""Memory safety of a long-lived worker.

1. 10,000 hits through ONE worker running under valgrind memcheck (under
   LeakSanitizer instead when configured --enable-sanitizers), a mix of
   GET, HEAD, POST, 405s and the hostile inputs of test_hostile.py, posting
   (signed) to the Elasticsearch stand-in; then SIGTERM.  valgrind must report
   no error and no definitely or indirectly lost block (exit status and the
   summary both say so), and every recorded hit must have been accepted.
2. A worker's resident memory (VmRSS) after 100,000 hits is within 1 MiB of
   what it was after 1,000 (the same mix).  This one writes to the embedded
   default's file: the stand-in keeps every document in memory and answers
   about 1,500 requests a second, so 100,000 hits through it would measure the
   stand-in; the document building, the journal and the accept loop are the
   same either way, and the Elasticsearch client's memory is what part 1
   checks.

The hits go through tests/fcgi_client.py, one keep-alive FastCGI connection
(one cgi-fcgi process per hit would take minutes under valgrind).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
import fcgi_client  # noqa: E402
import test_hostile as hostile  # noqa: E402
from tplib import eq, pixel_env, wait_for, PIXEL, AWS_KEYS  # noqa: E402
from es_standin import Standin  # noqa: E402

VALGRIND_HITS = 10000
RSS_WARM, RSS_TOTAL = 1000, 100000
RSS_SLACK = 1 << 20


def mix():
    """[(params, body, expected status)]: every hostile row once, plus plain
    GET/HEAD/POST and methods that get 405.  Bodies over 256 KiB are left
    out (they only repeat the drain loop and slow valgrind down)."""
    out = [(pixel_env(QUERY_STRING="utm_source=news&i=1", HTTP_USER_AGENT="Mozilla/5.0"), b"", 200),
           (pixel_env(REQUEST_METHOD="HEAD"), b"", 200),
           (pixel_env(REQUEST_METHOD="POST", CONTENT_TYPE="application/json"),
            b'{"event":"click","n":[1,2.5,null]}', 200),
           (pixel_env(REQUEST_METHOD="PUT"), b"", 405),
           ({k: v for k, v in pixel_env().items() if k != "REQUEST_METHOD"}, b"", 405)]
    for name, qs, _, _ in hostile.QUERY_ROWS:
        out.append((pixel_env(QUERY_STRING=qs), b"", 200))
    for name, pairs, _, _, _ in hostile.HEADER_ROWS:
        out.append((list(pixel_env().items()) + list(pairs), b"", 200))
    for name, body, extra, _, _ in hostile.POST_ROWS:
        body = body if isinstance(body, bytes) else body.encode()
        if len(body) > 256 * 1024:
            continue
        params = pixel_env(REQUEST_METHOD="POST", CONTENT_TYPE="application/json")
        params["CONTENT_LENGTH"] = str(len(body))
        params.update(extra)
        out.append((params, body, 200))
    for name, drop, add, _, _ in hostile.ENV_ROWS:
        params = [(k, v) for k, v in pixel_env().items() if k not in drop and k not in add]
        out.append((params + list(add.items()), b"", 200))
    return out


def drive(port, n, requests, offset=0):
    """n hits over one connection, cycling through requests; returns the
    request ids of the recorded ones."""
    ids = []
    with fcgi_client.FcgiClient(port, timeout=120) as fc:
        for i in range(offset, offset + n):
            params, body, want = requests[i % len(requests)]
            fc.begin(params, body)
            status, headers, data = fc.response()[:3]
            if status != want:
                raise AssertionError("hit %d: status %d, expected %d" % (i, status, want))
            if want == 200:
                if data not in (PIXEL, b""):
                    raise AssertionError("hit %d: not the pixel: %r" % (i, data[:80]))
                ids.append(headers["X-Request-Id"])
    return ids


def journal_pending(spool):
    """Bytes of the journals in spool not delivered yet: each journal's size
    past the offset its .done file holds."""
    total = 0
    for f in os.listdir(spool):
        if f.startswith("journal.") and f.endswith(".ndjson"):
            path = os.path.join(spool, f)
            try:
                with open(path + ".done") as d:
                    done = int(d.read().strip() or 0)
            except (OSError, ValueError):
                done = 0
            total += max(0, os.path.getsize(path) - done)
    return total


def valgrind_summary(text):
    """{'errors': N, 'definitely': bytes, 'indirectly': bytes}"""
    m = re.findall(r"ERROR SUMMARY: ([\d,]+) errors", text)
    if not m:
        raise AssertionError("no ERROR SUMMARY in the valgrind log:\n" + text[-3000:])
    out = {"errors": int(m[-1].replace(",", ""))}
    for kind in ("definitely", "indirectly"):
        k = re.findall(r"%s lost: ([\d,]+) bytes" % kind, text)
        if k:
            out[kind] = int(k[-1].replace(",", ""))
        elif "All heap blocks were freed" in text:
            out[kind] = 0
        else:
            raise AssertionError("no '%s lost' line in the valgrind log:\n%s" % (kind, text[-3000:]))
    return out


def linked(lib):
    p = subprocess.run(["ldd", tplib.TRACKPIXEL], capture_output=True, text=True)
    return lib in p.stdout


def built_with_asan():
    """configure --enable-sanitizers: valgrind cannot run an ASan binary, and
    LeakSanitizer (part of ASan) does the leak check at exit instead."""
    return linked("libasan")


def built_with_tsan():
    """configure --enable-tsan: neither valgrind nor VmRSS can judge it."""
    return linked("libtsan")


def test_10000_hits_under_valgrind():
    if built_with_tsan():
        raise tplib.Skip("valgrind cannot run a ThreadSanitizer build")
    d = tempfile.mkdtemp(prefix="tp-valgrind-")
    log = os.path.join(d, "valgrind.log")
    asan = built_with_asan()
    if asan:
        wrapper = []
    elif not shutil.which("valgrind"):
        raise AssertionError("valgrind is not installed (apt-get install valgrind)")
    else:
        wrapper = ["valgrind", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                   "--track-fds=no", "--num-callers=30", "--log-file=" + log]
    with Standin(access_key=AWS_KEYS["AWS_ACCESS_KEY_ID"],
                 secret_key=AWS_KEYS["AWS_SECRET_ACCESS_KEY"],
                 session_token=AWS_KEYS["AWS_SESSION_TOKEN"],
                 require_signature=True) as es:
        # Every hostile row in one index: a cluster takes them only with
        # a template like --setup's.
        es.safe_template()
        env = hostile.worker_env(es, TRACKPIXEL_SPOOL_DIR=os.path.join(d, "spool"))
        if asan:
            env["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=99"
        w = tplib.Worker(env, cwd=d, wrapper=wrapper).start()
        try:
            requests = mix()
            # valgrind takes a few seconds to start: the first hit waits.
            ids = drive(w.port, VALGRIND_HITS, requests)
            # Until the worker's journal is empty (everything delivered): the
            # stand-in's list of 10,000 documents is too big to poll.
            wait_for(lambda: journal_pending(env["TRACKPIXEL_SPOOL_DIR"]) == 0, timeout=120,
                     what="the journal to be delivered")
            rc = w.stop(timeout=120)
        finally:
            if w.proc is not None:
                w.proc.kill()
                w.proc.wait()
        if asan:
            text = w.stderr()
            if rc != 0 or re.search(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:", text):
                raise AssertionError("exit %s; sanitizer report:\n%s" % (rc, text[-6000:]))
        else:
            with open(log, errors="replace") as f:
                text = f.read()
            summary = valgrind_summary(text)
            if rc != 0 or summary != {"errors": 0, "definitely": 0, "indirectly": 0}:
                raise AssertionError("exit %s, %r; valgrind log:\n%s" % (rc, summary, text[-6000:]))
        docs = es.docs()
        eq(sorted(x["id"] for x in docs), sorted(ids), "documents accepted, one per recorded hit")
        bad = [r for r in es.requests() if r["status"] not in (200, 201)]
        eq(bad, [], "requests the stand-in refused")
        tplib.assert_no_secrets(w.stderr(), "stderr")
        print("# %d hits (%d recorded) under %s" % (VALGRIND_HITS, len(ids),
              "AddressSanitizer/LeakSanitizer" if asan else "valgrind"), flush=True)


def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def test_rss_flat_over_100000_hits():
    if built_with_tsan():
        raise tplib.Skip("VmRSS says nothing under ThreadSanitizer (shadow memory)")
    if built_with_asan():
        # ASan keeps freed memory in quarantine and maps shadow memory: the
        # resident size says nothing there.  The normal build checks it.
        raise tplib.Skip("VmRSS says nothing under AddressSanitizer (the normal build measures it)")
    d = tempfile.mkdtemp(prefix="tp-rss-")
    out = os.path.join(d, "events.ndjson")
    env = {"PATH": "/usr/bin:/bin", "TRACKPIXEL_OUTPUT": out,
           "TRACKPIXEL_SPOOL_DIR": os.path.join(d, "spool")}
    requests = mix()
    with tplib.Worker(env, cwd=d) as w:
        drive(w.port, RSS_WARM, requests)
        time.sleep(0.2)
        warm = vm_rss(w.proc.pid)
        samples = []
        done = RSS_WARM
        while done < RSS_TOTAL:
            n = min(9000, RSS_TOTAL - done)
            drive(w.port, n, requests, offset=done)
            done += n
            samples.append(vm_rss(w.proc.pid))
        time.sleep(0.2)
        final = vm_rss(w.proc.pid)
        print("# VmRSS after %d hits: %d KiB; after %d: %d KiB (samples %s KiB)" %
              (RSS_WARM, warm // 1024, RSS_TOTAL, final // 1024,
               [s // 1024 for s in samples]), flush=True)
        eq(w.stop(), 0, "exit status")
        assert final - warm <= RSS_SLACK, \
            "VmRSS grew by %d KiB from %d to %d hits" % ((final - warm) // 1024, RSS_WARM, RSS_TOTAL)
    with open(out, "rb") as f:
        lines = sum(1 for _ in f)
    recorded = sum(1 for i in range(RSS_TOTAL) if requests[i % len(requests)][2] == 200)
    eq(lines, 2 * recorded, "lines in the output (action + document per recorded hit)")


if __name__ == "__main__":
    tplib.run_tests(globals())
