#!/usr/bin/python3
"""trackpixel --setup against the stand-in's model of dynamic mapping: traffic
a cluster refuses without the template (1,200 new names, object/concrete and
type conflicts) and accepts with it, on Elasticsearch and OpenSearch; a
second --setup changes nothing; clear errors; daily indices across a UTC
midnight; --replay of the dead letters once the template is there."""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgi_client  # noqa: E402
import tplib  # noqa: E402
from tplib import eq, pixel_env, wait_for  # noqa: E402
from es_standin import Standin  # noqa: E402

NAMES = 1200


def run(args, env):
    return tplib.run_trackpixel(args, env, timeout=60)


def traffic():
    """[(CGI variables, body)]: the three conflicts, each after the hit that
    maps its name, then NAMES hits each with a new parameter name."""
    post = dict(REQUEST_METHOD="POST", CONTENT_TYPE="application/json")
    hits = [(pixel_env(QUERY_STRING="a=1"), b""),
            (pixel_env(QUERY_STRING="a.b=2"), b""),
            (pixel_env(**post), b'{"v":1}'),
            (pixel_env(**post), b'{"v":"x"}'),
            (pixel_env(HTTP_X_FOO="1"), b""),
            (dict(pixel_env(), **{"HTTP_X_FOO.BAR": "2"}), b"")]
    hits += [(pixel_env(QUERY_STRING="q%04d=v" % i), b"") for i in range(NAMES)]
    return hits


def drive(port, hits):
    """Every hit over one FastCGI connection; the request ids in order."""
    ids = []
    with fcgi_client.FcgiClient(port, timeout=60) as fc:
        for params, body in hits:
            if body:
                params = dict(params, CONTENT_LENGTH=str(len(body)))
            fc.begin(params, body)
            status, headers = fc.response()[:2]
            eq(status, 200, "pixel")
            ids.append(headers["X-Request-Id"])
    return ids


def dead_letters(spool):
    path = os.path.join(spool, "deadletter.ndjson")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def settled(es, spool, n, index=None):
    """Wait until n documents are stored or dead letters; (stored, dead)."""
    def done():
        docs = es.docs(index)
        dead = dead_letters(spool)
        return (docs, dead) if len(docs) + len(dead) >= n else None
    return wait_for(done, timeout=60, what="%d documents stored or refused" % n)


def worker_env(es, spool, **extra):
    env = {"TRACKPIXEL_ES_URL": es.url, "TRACKPIXEL_SPOOL_DIR": spool,
           "TRACKPIXEL_ES_INDEX": "events"}
    env.update(extra)
    return env


def serve(env, hits, program=None):
    w = tplib.Worker(env, program=program).start()
    try:
        ids = drive(w.port, hits)
        # A SIGTERM right as the kept connection closes can be taken before
        # the accept() that follows and leave it blocked (main.c's loop):
        # let the worker get back to its wait first.
        time.sleep(0.3)
    finally:
        eq(w.stop(), 0, "worker exit status")
    return ids


def test_refused_without_setup_then_accepted_and_replayed():
    d = tempfile.mkdtemp(prefix="tp-setup-")
    spool = os.path.join(d, "spool")
    try:
        with Standin() as es:
            env = worker_env(es, spool)
            hits = traffic()
            serve(env, hits)
            docs, dead = settled(es, spool, len(hits))
            # 50 fields for a GET's document (18 context strings with their
            # .keyword, 8 objects, agent's class and name with theirs, date,
            # @timestamp); a=1 and X-Foo add 2 each, the POSTs' two headers
            # and v 5: 59, then 470 names fit.
            eq((len(docs), len(dead)), (3 + 470, 3 + NAMES - 470), "stored, refused")
            reasons = [x["reason"] for x in dead]
            eq(reasons[:3], [
                "HTTP 400: mapper_parsing_exception: Could not dynamically add mapping for "
                "field [params.querystring.a.b]. Existing mapping for [params.querystring.a] "
                "must be of type object but found [text].",
                "HTTP 400: mapper_parsing_exception: failed to parse field [body-json.v] of "
                "type [long] in document with id '%s'. Preview of field's value: 'x'"
                % dead[1]["_id"],
                "HTTP 400: mapper_parsing_exception: Could not dynamically add mapping for "
                "field [params.header.X-Foo.bar]. Existing mapping for [params.header.X-Foo] "
                "must be of type object but found [text]."], "the conflicts' reasons")
            eq(set(reasons[3:]), {"HTTP 400: illegal_argument_exception: Limit of total "
                                  "fields [1000] in index [events] has been exceeded"},
               "the names past the limit")

            # The index keeps its mapping: drop it, install the template.
            eq(es.request("DELETE", "/events").status, 200, "DELETE /events")
            rc, out, err = run(["--setup"], env)
            eq((rc, err), (0, ""), "--setup: " + out)
            eq(out.splitlines(), [
                "cluster: Elasticsearch 7.10.2",
                "retention: off (TRACKPIXEL_RETENTION_DAYS=0: indices are kept; a policy "
                "installed before is left as it is)",
                "index template trackpixel (events, flattened): installed",
                "setup: done, 1 change; new indices take the template (an index created "
                "before keeps its mapping)"], "--setup output")
            rc, out, _ = run(["--replay", os.path.join(spool, "deadletter.ndjson")], env)
            eq((rc, out.splitlines()[-1]),
               (0, "replayed %s: %d accepted, 0 rejected, 0 not sent, 0 malformed lines"
                % (os.path.join(spool, "deadletter.ndjson"), len(dead))), "--replay")

            serve(env, hits)
            docs, dead2 = settled(es, spool, 2 * len(dead) + len(hits))
            eq((len(docs), len(dead2)), (len(dead) + len(hits), len(dead)),
               "all accepted, no new dead letter")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_opensearch_flat_object_accepts_all():
    d = tempfile.mkdtemp(prefix="tp-setup-")
    spool = os.path.join(d, "spool")
    try:
        with Standin(distribution="opensearch", version_number="2.11.0") as es:
            env = worker_env(es, spool, TRACKPIXEL_RETENTION_DAYS="30")
            rc, out, _ = run(["--setup"], env)
            eq(rc, 0, "--setup: " + out)
            eq(out.splitlines()[1:3], ["ISM policy trackpixel (delete after 30 days): installed",
                                       "index template trackpixel (events, flat_object): "
                                       "installed"], "OpenSearch steps")
            hits = traffic()
            serve(env, hits)
            docs, dead = settled(es, spool, len(hits))
            eq((len(docs), len(dead)), (len(hits), 0), "stored, refused")
            m = es.request("GET", "/events/_mapping").json()["events"]["mappings"]["properties"]
            eq(m["params"]["properties"]["querystring"], {"type": "flat_object"}, "flat_object")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_elasticsearch_8():
    d = tempfile.mkdtemp(prefix="tp-setup-")
    spool = os.path.join(d, "spool")
    try:
        with Standin(version_number="8.11.0") as es:
            env = worker_env(es, spool)
            rc, out, _ = run(["--setup"], env)
            eq((rc, out.splitlines()[0], out.splitlines()[2]),
               (0, "cluster: Elasticsearch 8.11.0",
                "index template trackpixel (events, flattened): installed"), "--setup")
            hits = traffic()
            serve(env, hits)
            docs, dead = settled(es, spool, len(hits))
            eq((len(docs), len(dead)), (len(hits), 0), "stored, refused")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_setup_twice_no_change_and_check():
    with Standin() as es:
        env = {"TRACKPIXEL_ES_URL": es.url, "TRACKPIXEL_ES_INDEX": "events-%Y.%m.%d",
               "TRACKPIXEL_RETENTION_DAYS": "30", "TRACKPIXEL_ES_USER_AGENT": "1"}
        rc, out, _ = run(["--check"], env)
        eq(out.splitlines()[-1], "index template trackpixel (events-*.*.*, flattened): not "
           "installed (run trackpixel --setup)", "--check before")
        rc, first, _ = run(["--setup"], env)
        eq((rc, first.splitlines()[1:4]), (0, [
            "ingest pipeline trackpixel-user-agent: installed",
            "ILM policy trackpixel (delete after 30 days): installed",
            "index template trackpixel (events-*.*.*, flattened): installed"]), "first")
        puts = len([r for r in es.requests() if r["method"] == "PUT"])
        rc, second, _ = run(["--setup"], env)
        eq((rc, second.splitlines()), (0, [
            "cluster: Elasticsearch 7.10.2",
            "ingest pipeline trackpixel-user-agent: no change",
            "ILM policy trackpixel (delete after 30 days): no change",
            "index template trackpixel (events-*.*.*, flattened): no change",
            "setup: no change"]), "second")
        eq(len([r for r in es.requests() if r["method"] == "PUT"]), puts, "no PUT the second time")
        rc, out, _ = run(["--check"], env)
        eq((rc, out.splitlines()[-1]), (0, "index template trackpixel (events-*.*.*, flattened): "
                                           "installed and matches"), "--check after")
        rc, out, _ = run(["--setup"], dict(env, TRACKPIXEL_RETENTION_DAYS="7"))
        eq(out.splitlines()[2:4], ["ILM policy trackpixel (delete after 7 days): updated",
                                   "index template trackpixel (events-*.*.*, flattened): no change"],
           "another retention")


def test_errors():
    port = tplib.free_port()
    rc, out, _ = run(["--setup"], {"TRACKPIXEL_ES_URL": "http://127.0.0.1:%d" % port})
    eq(rc, 1, "unreachable: exit status")
    assert out.startswith("setup: error: the cluster is unreachable: "), out
    with Standin(basic_user="tp", basic_password="right") as es:
        url = es.url.replace("http://", "http://tp:wrong@")
        rc, out, _ = run(["--setup"], {"TRACKPIXEL_ES_URL": url})
        eq(rc, 1, "401: exit status")
        assert out.startswith("setup: error: the cluster refused the credentials: HTTP 401"), out
        assert "wrong" not in out, out
    for dist, number, name in (("elasticsearch", "6.8.23", "Elasticsearch"),
                               ("elasticsearch", "7.9.3", "Elasticsearch"),
                               ("opensearch", "1.3.14", "OpenSearch")):
        with Standin(distribution=dist, version_number=number) as es:
            rc, out, _ = run(["--setup"], {"TRACKPIXEL_ES_URL": es.url})
            eq((rc, out), (1, "setup: error: %s %s is not supported: --setup needs "
                              "Elasticsearch 7.10 or later (its default distribution), "
                              "OpenSearch 2.0 or later, or OpenSearch Serverless "
                              "(TRACKPIXEL_AWS_SERVICE=aoss)\n" % (name, number)), number)
            eq([r["method"] for r in es.requests()], ["GET"], "only GET /")
    rc, out, err = run(["--setup"], {"TRACKPIXEL_ES_URL": "http://127.0.0.1:1",
                                     "TRACKPIXEL_ES_INDEX": "events-%H"})
    eq((rc, err), (1, "trackpixel: TRACKPIXEL_ES_INDEX: the only conversions are %Y, %m and "
                      "%d, and the name is at most 255 bytes\n"), "a bad pattern")


def test_aoss_has_no_get_root():
    with tplib.signed_standin(service="aoss", distribution="opensearch",
                              version_number="2.11.0") as es:
        env = dict(tplib.AWS_KEYS, TRACKPIXEL_ES_URL=es.url, TRACKPIXEL_AWS_SERVICE="aoss",
                   TRACKPIXEL_RETENTION_DAYS="30")
        rc, out, _ = run(["--setup"], env)
        eq((rc, out.splitlines()), (0, [
            "cluster: OpenSearch Serverless",
            "retention: skipped: OpenSearch Serverless has no ISM; set a data lifecycle "
            "policy on the collection",
            "index template trackpixel (events, flat_object): installed",
            "setup: done, 1 change; new indices take the template (an index created "
            "before keeps its mapping)"]), "aoss")
        eq([(r["method"], r["path"]) for r in es.requests()],
           [("GET", "/_index_template/trackpixel"), ("PUT", "/_index_template/trackpixel")],
           "no GET /")


def test_daily_indices_across_midnight():
    if not os.path.exists(tplib.TRACKPIXEL_HOOKS):
        raise tplib.Skip("tests/trackpixel-hooks is not built")
    d = tempfile.mkdtemp(prefix="tp-setup-")
    spool = os.path.join(d, "spool")
    try:
        with Standin() as es:
            env = worker_env(es, spool, TRACKPIXEL_ES_INDEX="ev-%Y.%m.%d")
            eq(run(["--setup"], env)[0], 0, "--setup")
            now = time.time()
            # The hits' clock 1.5 s before the next UTC midnight.
            offset = int(86400 - now % 86400) - 2
            env["TRACKPIXEL_TEST_CLOCK_OFFSET_S"] = str(offset)
            hits = [(pixel_env(QUERY_STRING="n=%d" % i), b"") for i in range(40)]
            w = tplib.Worker(env, program=tplib.TRACKPIXEL_HOOKS).start()
            try:
                ids = []
                for k in range(8):
                    ids += drive(w.port, hits[5 * k:5 * k + 5])
                    time.sleep(0.5)
                # The journal names the pattern, not a day: a worker of the
                # same configuration claims it whatever day it was left on.
                journals = [f for f in os.listdir(spool)
                            if f.startswith("journal.") and f.endswith(".ndjson")]
                eq(len(journals), 1, "one journal")
                with open(os.path.join(spool, journals[0]), encoding="utf-8") as f:
                    eq(f.readline(), "#trackpixel-journal 2 %s ev-%%Y.%%m.%%d\n" % es.url,
                       "the journal's destination")
            finally:
                time.sleep(0.3)
                eq(w.stop(), 0, "worker exit status")
            docs, dead = settled(es, spool, len(hits))
            eq(len(dead), 0, "dead letters")
            days = sorted({x["index"] for x in docs})
            eq(len(days), 2, "two indices: %r" % days)
            for doc in docs:
                ts = doc["source"]["@timestamp"]
                eq(doc["index"], "ev-%s.%s.%s" % (ts[:4], ts[5:7], ts[8:10]), "index of " + ts)
            for day in days:
                m = es.request("GET", "/%s/_mapping" % day).json()[day]["mappings"]
                eq(m["properties"]["params"]["properties"]["querystring"], {"type": "flattened"},
                   day + " has the template's mapping")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    tplib.run_tests(globals())
