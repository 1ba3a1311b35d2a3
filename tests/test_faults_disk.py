"""Disk faults: a spool that is full or read-only, a damaged journal, two
configurations sharing one spool, a dead letter that does not fit, an index
name long enough to overflow a fixed buffer.

Real workers under cgi-fcgi, posting to the Elasticsearch stand-in; the
spool is a real tmpfs or a loop-mounted ext4 image (the test is skipped
when mounting is not permitted).  Every case counts documents exactly:
N hits, N documents, no duplicates."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402
from tplib import eq, wait_for  # noqa: E402
from es_standin import Standin  # noqa: E402
import faultlib as fl  # noqa: E402
from faultlib import hits, exactly, env_for, start_worker, lines_with  # noqa: E402


# ---------------------------------------------------------------- 1

def journal_comes_back(stack, spool, available):
    """A worker starts while no journal can be created in spool: it serves
    and posts without one, says so once, and takes the journal back by
    itself once available() has made room; a later outage loses nothing."""
    es = stack.enter_context(Standin())
    env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=spool, TRACKPIXEL_SLOW_MS="60000")
    w = start_worker(stack, env)
    ids = hits(w, 20)                         # the pixel, exactly, 20 times
    exactly(es, ids, what="documents posted without a journal")
    assert w.proc.poll() is None, "the worker is still running"
    told = lines_with(w.stderr(), "journal unavailable")
    assert 1 <= len(told) <= 2, "said once (rate-limited), not per hit: %r" % told

    available()
    deadline = time.monotonic() + 25
    while "journal back" not in w.stderr():
        assert time.monotonic() < deadline, "no 'journal back' line: %r" % w.stderr()[-1500:]
        ids += hits(w, 1, start=len(ids))
        time.sleep(0.3)
    exactly(es, ids, what="documents while the journal came back")

    # Journaled again: an outage, then the worker dies; the next one sends.
    es.mode(status=503)
    later = hits(w, 5, start=100)
    pid = w.proc.pid
    fl.kill9(w)
    assert fl.journals(spool), "a journal is left by worker %d" % pid
    es.mode()
    start_worker(stack, env)
    exactly(es, ids + later, what="all documents after the outage")


def test_full_tmpfs_spool_worker_starts_and_journal_comes_back():
    with fl.everything() as stack:
        fs = stack.enter_context(fl.Tmpfs(512 * 1024))
        filler = fl.fill(fs.path)
        journal_comes_back(stack, fs.path, lambda: os.unlink(filler))


def test_read_only_spool_worker_starts_and_journal_comes_back():
    with fl.everything() as stack:
        fs = stack.enter_context(fl.Ext4Image(16))
        spool = os.path.join(fs.path, "spool")
        os.mkdir(spool, 0o750)
        fs.remount("ro")                      # errors=remount-ro
        journal_comes_back(stack, spool, lambda: fs.remount("rw"))


# ---------------------------------------------------------------- 2

def no_journal_no_wait(mode, settle):
    """No journal and a cluster that fails (mode): every hit is either
    delivered or counted as dropped, drops are logged rate-limited with a
    count, and the worker does not post each hit to a cluster it knows is
    down."""
    n = 20
    with fl.everything() as stack:
        fs = stack.enter_context(fl.Tmpfs(256 * 1024))
        fl.fill(fs.path)
        es = stack.enter_context(Standin())
        es.mode(**mode)
        env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=fs.path, TRACKPIXEL_TIMEOUT_MS="5000",
                      TRACKPIXEL_SLOW_MS="50")
        w = start_worker(stack, env)
        ids = hits(w, n)
        time.sleep(settle)                    # the stand-in logs a request when it answers
        creates = [r for r in es.requests() if "/_create/" in r["path"]]
        assert len(creates) <= 5, "%d _create requests for %d hits to a cluster known down" % (
            len(creates), n)
        es.mode()
        eq(w.stop(), 0, "exit status")
        log = w.stderr()
        nhits, delivered, dead, dropped = fl.stopping_counts(log)
        eq(nhits, n, "hits counted")
        eq(delivered + dead + dropped, n, "delivered + dead letters + dropped")
        docs = [d["id"] for d in es.docs()]
        eq(len(set(docs)), len(docs), "no duplicates")
        assert set(docs) <= set(ids), "only our documents"
        # A post the worker gave up on may still have been stored.
        assert delivered <= len(docs) <= delivered + dropped, (delivered, dropped, len(docs))
        counted = [int(x) for x in re.findall(r"(\d+) hits dropped", log)]
        if dropped:
            assert counted and max(counted) <= dropped, \
                "a 'N hits dropped' line (%d dropped): %r" % (dropped, log[-1500:])
        assert len(lines_with(log, "dropped")) < n // 2, "drops are logged rate-limited: %r" % log
        assert len(log.splitlines()) < n, "fewer log lines than hits: %r" % log


def test_no_journal_cluster_down_hits_dropped_and_counted():
    no_journal_no_wait({"status": 503}, 0.5)


def test_no_journal_cluster_hanging_hits_dropped_and_counted():
    no_journal_no_wait({"delay_ms": 3000}, 3.5)


# ---------------------------------------------------------------- 4

def entry_starts(data):
    """Offsets where each journal entry starts: the line holding a create
    action, or the `#...` line just before it (an entry's own header, not
    the file's)."""
    starts = []
    pos = 0
    while True:
        i = data.find(b'{"create"', pos)
        if i < 0:
            return starts
        pos = i + 1
        if i > 0 and data[i - 1:i] != b"\n":
            continue
        prev = data.rfind(b"\n", 0, max(i - 1, 0)) + 1 if i > 0 else 0
        if i > 0 and data[prev:prev + 1] == b"#" and \
                not data[prev:].startswith(b"#trackpixel-journal"):
            starts.append(prev)
        else:
            starts.append(i)


def orphan_with_backlog(stack, es, env, n, query="i=%d"):
    """A worker takes n hits while the cluster is down and is killed with
    -9: its journal is left in its spool.  Returns (ids, journal path, bytes)."""
    spool = env["TRACKPIXEL_SPOOL_DIR"]
    es.mode(status=503)
    w = start_worker(stack, env)
    ids = hits(w, n, query=query)
    fl.kill9(w)
    es.mode()
    names = fl.journals(spool)
    eq(len(names), 1, "journals left")
    path = os.path.join(spool, names[0])
    with open(path, "rb") as f:
        data = f.read()
    for i in ids:
        assert ('"_id":"%s"' % i).encode() in data, "hit %s is in the journal" % i
    eq(len(entry_starts(data)), n, "entries found in the journal")
    return ids, path, data


def damaged_journal(corrupt, n=12, query="i=%d"):
    """corrupt(data, starts) -> (new bytes, ids that are damaged, bytes
    that must be in the damaged file)."""
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=spool)
        ids, path, data = orphan_with_backlog(stack, es, env, n, query)
        new, lost, saved = corrupt(data, entry_starts(data), ids)
        with open(path, "wb") as f:
            f.write(new)
        w = start_worker(stack, env)
        intact = [i for i in ids if i not in lost]
        exactly(es, intact, what="intact entries")
        damaged = os.path.join(spool, "damaged." + os.path.basename(path))
        wait_for(lambda: os.path.exists(damaged), timeout=10,
                 what="%s (spool: %r)" % (damaged, os.listdir(spool)))
        with open(damaged, "rb") as f:
            kept = f.read()
        assert saved in kept, "the damaged bytes are kept: %r" % kept[:200]
        eq(len(intact) + len(lost), n, "delivered + damaged")
        log = w.stderr()
        assert "damaged" in log, log[-1500:]
        eq(w.stop(), 0, "exit status")
        tplib.assert_no_secrets(log)


def test_damaged_journal_stray_line():
    stray = b"this line was never written by trackpixel\n"

    def corrupt(data, starts, ids):
        return data[:starts[1]] + stray + data[starts[1]:], [], stray
    damaged_journal(corrupt)


def test_damaged_journal_zeroed_block():
    def corrupt(data, starts, ids):
        z0 = starts[len(starts) // 2] + 100
        z1 = z0 + 4096
        ends = starts[1:] + [len(data)]
        lost = [ids[k] for k, (s, e) in enumerate(zip(starts, ends)) if s < z1 and e > z0]
        assert 2 <= len(lost) < len(ids) - 2, lost
        return data[:z0] + b"\0" * 4096 + data[z1:], lost, b"\0" * 4096
    # ~1.2 KB an entry: the 4 KiB block spans a few entries.
    damaged_journal(corrupt, n=24, query="pad=" + "p" * 700 + "&i=%d")


def test_damaged_journal_half_a_line_at_the_end():
    def corrupt(data, starts, ids):
        last = data[starts[-1]:]
        doc = last.rstrip(b"\n").rsplit(b"\n", 1)[1]
        half = doc[:len(doc) // 2]
        return data + half, [], half
    damaged_journal(corrupt)


# ---------------------------------------------------------------- 5

def test_other_configurations_orphans_stay_theirs():
    password = "pw-not-for-logs-8u2q"
    with fl.everything() as stack:
        es_a = stack.enter_context(Standin(basic_user="alice", basic_password=password))
        es_b = stack.enter_context(Standin())
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        url_a = "http://alice:%s@127.0.0.1:%d" % (password, es_a.port)
        env_a = env_for(url_a, TRACKPIXEL_SPOOL_DIR=spool, TRACKPIXEL_ES_INDEX="prod")
        env_b = env_for(es_b.url, TRACKPIXEL_SPOOL_DIR=spool, TRACKPIXEL_ES_INDEX="staging",
                        TRACKPIXEL_SLOW_MS="60000")
        ids_a, _, _ = orphan_with_backlog(stack, es_a, env_a, 8)

        rc, out = fl.spool_status(env_b)
        eq(rc, 0, "--spool-status exit: " + out)
        assert "127.0.0.1:%d" % es_a.port in out and "prod" in out, \
            "the orphan's destination is shown: %r" % out
        assert password not in out, "no credentials in --spool-status"

        w_b = start_worker(stack, env_b)
        ids_b = hits(w_b, 1)
        exactly(es_b, ids_b, what="B's own document")
        time.sleep(5.5)                       # B's deliverer looks at the spool every 5 s
        eq(sorted(d["id"] for d in es_b.docs()), ids_b, "B holds only B's documents")
        eq(es_a.docs(), [], "A's documents wait for an A worker")

        w_a = start_worker(stack, env_a)
        docs = exactly(es_a, ids_a, what="A's orphaned documents at A")
        eq({d["index"] for d in docs}, {"prod"}, "A's index")
        eq(sorted(d["id"] for d in es_b.docs()), ids_b, "B still holds only B's documents")
        for w in (w_a, w_b):
            eq(w.stop(), 0, "exit status")
            assert password not in w.stderr(), "no credentials in the log"


# ---------------------------------------------------------------- 8

def test_dead_letter_on_a_full_disk_stays_whole_lines():
    with fl.everything() as stack:
        fs = stack.enter_context(fl.Tmpfs(1024 * 1024))
        es = stack.enter_context(Standin())
        env = env_for(es.url, TRACKPIXEL_SPOOL_DIR=fs.path, TRACKPIXEL_SLOW_MS="60000")
        w = start_worker(stack, env)
        exactly(es, hits(w, 1), what="a first document")
        # 4 pages left: the hit's journal entry (~11 KB) takes 3, its dead
        # letter (a bit more) then finds 1: a short write.
        fl.fill(fs.path, leave_pages=4)
        es.mode(status=400, count=1)
        big = "&".join("%s=%s" % (k, k * 3500) for k in "abc")
        rid = hits(w, 1, query=big + "&i=%d")[0]
        wait_for(lambda: rid in w.stderr(), timeout=10, what="the log line for " + rid)
        time.sleep(0.3)
        data = fl.deadletters(fs.path)
        got = fl.all_json_lines(data, "deadletter.ndjson")
        assert all(d["_id"] == rid for d in got), got
        log = w.stderr()
        assert "short write" in log, log[-1500:]
        assert ": Success" not in log, log[-1500:]
        assert w.proc.poll() is None, "still running"


# ---------------------------------------------------------------- 10

def test_long_index_name_is_journaled():
    index = "events-" + "x" * 193              # 200 bytes; Elasticsearch takes 255
    with fl.everything() as stack:
        es = stack.enter_context(Standin())
        spool = os.path.join(stack.enter_context(fl.TempDir()), "spool")
        es.mode(status=503)
        w = start_worker(stack, env_for(es.url, TRACKPIXEL_SPOOL_DIR=spool,
                                        TRACKPIXEL_ES_INDEX=index))
        ids = hits(w, 5)
        time.sleep(0.3)
        es.mode()
        docs = exactly(es, ids, what="documents under a 200-byte index name")
        eq({d["index"] for d in docs}, {index}, "index")
        eq(w.stop(), 0, "exit status")
        eq(fl.stopping_counts(w.stderr())[:4], (5, 5, 0, 0), "hits, delivered, dead, dropped")


if __name__ == "__main__":
    fl.run_tests(globals())
