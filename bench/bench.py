#!/usr/bin/python3
"""bench.py - trackpixel's benchmarks, side by side in one run.

    make bench                  (full run; rewrites BENCHMARKS.md)
    make bench BENCH_QUICK=1    (short run for CI; writes bench/quick.md)
    bench/bench.py --help

Throughput and latency, with the same wrk load for every row (rows.py
defines the rows):

  1. nginx empty_gif                  the ceiling for a pixel over HTTP here
  2. lighttpd, a static 60-byte file
  3. lighttpd + bench/bare_pixel      the ceiling for any FastCGI pixel
  4. lighttpd + trackpixel            signing on, journal on, fast stand-in
  5. Apache mod_fcgid + trackpixel    the same
  6. as 4, the stand-in answers after 500 ms
  7. as 4, the stand-in stopped       the cluster is down
  8. Apache mod_fcgid + bare_pixel    to tell mod_fcgid's share in 5
  9. as 4, the stand-in never answers a hung cluster (timeouts)
 10. the peer: nginx empty_gif + a JSON access log, tailed by rsyslog's
     imfile and shipped by omelasticsearch (_bulk) to the fast stand-in:
     what an administrator would build instead of trackpixel

Rows 2 to 9 use the SHIPPED configurations (lighttpd/50-trackpixel.conf,
apache/trackpixel.conf), rendered by tests/webserver.py as the tests do; the
only change is the number of worker processes, the same for rows 3 to 9.
Rows 3 and 8 run bench/bare_pixel through the very same configurations, in
place of trackpixel.  For each row, the CPU time each group of processes
used (web server, FastCGI processes, shipper, stand-in, wrk) per request;
for row 10 until rsyslog has shipped every line the run logged, and the
documents delivered against the requests nginx served.

Per-hit cost (worker.py): CPU instructions per hit (valgrind
--tool=callgrind; two runs of W and W+N hits through tests/fcgi_client.py,
so start-up, the first connection and shutdown cancel out), split by phase
with inclusive costs (rows.PHASES); and one worker's resident memory after
1,000, 10,000 and 100,000 hits, and after a backlog built while the cluster
was down.

The Elasticsearch stand-in is bench/es_fast (answers at once, or after
--delay-ms, verifies nothing): tests/es_standin.py verifies every signature
and would be the bottleneck.

The report (report.py) checks the targets of rows.TARGETS and compares the
run with bench/baseline.json, the first full run's figures (--baseline for
another figures file, written by --figures).

Everything listens on 127.0.0.1 only; everything started is stopped at the
end, also on failure or Ctrl-C.  These are benchmarks, not tests: the exit
status is 0 when the run completed, whatever the numbers.
"""
import argparse
import datetime
import glob
import json
import os
import shutil
import signal
import sys
import tempfile
import time

import paths
from paths import PROGRAMS
import report
import runner
from runner import log
from rows import ROWS
import webserver
import worker


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="short run for CI: 3 s per row, 1 s warm-up, 200 profiled hits, "
                         "RSS up to 10,000 hits; writes bench/quick.md")
    ap.add_argument("--duration", type=int, help="seconds of load per row (10; quick 3)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up per row (2; quick 1)")
    ap.add_argument("--connections", dest="conns", type=int, default=16,
                    help="wrk connections, the same for every row (16)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    ap.add_argument("--workers", type=int, default=8,
                    help="FastCGI processes for rows 3-9 (8)")
    ap.add_argument("--rows", help="which rows, e.g. 3,4 (default 1-10; quick: all but 9) "
                                   "(8: Apache + bare pixel, to compare with 5; 9: a cluster "
                                   "that never answers; 10: nginx + rsyslog, the peer)")
    ap.add_argument("--repeats", type=int,
                    help="rows 3 and 4 again this many times each, alternating, for the "
                         "medians of 4/3 and of the CPU per hit (4; quick 0)")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the callgrind profile")
    ap.add_argument("--no-memory", dest="memory", action="store_false",
                    help="skip the RSS measurement")
    ap.add_argument("--out", help="the report (default: BENCHMARKS.md in the source tree; "
                                  "quick: bench/quick.md in the build tree)")
    ap.add_argument("--baseline", default=paths.BASELINE,
                    help="the figures the report's 'Before and after' table compares with "
                         "(default bench/baseline.json, the first full run's; '' for none)")
    ap.add_argument("--figures", help="also write this run's figures to this file, in the "
                                      "form of bench/baseline.json (for a later --baseline)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return defaults(ap.parse_args(argv))


def defaults(opts):
    """The options that depend on --quick."""
    opts.duration = opts.duration or (3 if opts.quick else 10)
    opts.warmup = opts.warmup if opts.warmup is not None else (1 if opts.quick else 2)
    opts.cg_warm, opts.cg_hits = (20, 200) if opts.quick else (100, 2000)
    if opts.repeats is None:
        opts.repeats = 0 if opts.quick else 4
    opts.rss_points = [1000, 10000] if opts.quick else [1000, 10000, 100000]
    opts.outage_hits = 0 if opts.quick else 5000
    if opts.rows is None:
        rows = {n for n, row in ROWS.items() if row.quick or not opts.quick}
    else:
        rows = {int(x) for x in opts.rows.split(",") if x.strip()}
    opts.want = lambda n: n in rows
    if not opts.out:
        opts.out = (os.path.join(paths.BUILDDIR, "bench", "quick.md") if opts.quick
                    else os.path.join(paths.SRCDIR, "BENCHMARKS.md"))
    opts.shipped_lighttpd = runner.shipped_setting(webserver.LIGHTTPD_CONF,
                                                   r'"max-procs"\s*=>\s*(\d+)')
    opts.shipped_apache = runner.shipped_setting(webserver.APACHE_CONF,
                                                 r"^\s*FcgidMaxProcessesPerClass\s+(\d+)")
    opts.shipped_apache_reqs = runner.shipped_setting(webserver.APACHE_CONF,
                                                      r"^\s*FcgidMaxRequestsPerProcess\s+(\d+)")
    return opts


def preflight(opts):
    missing = [p for p in ("wrk", "nginx", "lighttpd", "apache2", "valgrind",
                           "callgrind_annotate") if not shutil.which(p)]
    if any(opts.want(n) for n, row in ROWS.items() if row.server == "peer"):
        if not shutil.which("rsyslogd"):
            missing.append("rsyslogd (rsyslog)")
        if not (glob.glob("/usr/lib/*/rsyslog/omelasticsearch.so") or
                glob.glob("/usr/lib/rsyslog/omelasticsearch.so")):
            missing.append("omelasticsearch (rsyslog-elasticsearch)")
    for path in PROGRAMS.values():
        if not os.access(path, os.X_OK):
            missing.append(path + " (run make first)")
    if not os.path.exists(os.path.join(webserver.APACHE_MODULES, "mod_fcgid.so")):
        missing.append("mod_fcgid (libapache2-mod-fcgid)")
    if missing:
        raise SystemExit("bench: missing: " + ", ".join(missing))
    # The run starts its own rsyslogd; one of the system's (Debian's package
    # starts it where services may start) is left alone, and its CPU shows
    # in the reports' "others".
    others = [pid for pid, (comm, state, _) in webserver.all_procs().items()
              if comm == "rsyslogd" and state != "Z"]
    if others:
        log("note: rsyslogd already runs (pid %s), not started by this run"
            % ", ".join(map(str, sorted(others))))


def on_signal(sig, frame):
    raise KeyboardInterrupt("signal %d" % sig)


def measure(opts, stopper, work):
    """Everything the run measures: (results, prof, mem)."""
    log("work directory %s; %d s per row, %d connections, %d workers"
        % (work, opts.duration, opts.conns, opts.workers))
    run = runner.Run(opts, stopper, work)
    results, prof, mem = {}, None, None
    runner.run_rows(run, results)
    if opts.repeats and 3 in results and 4 in results:
        runner.ratio_repeats(run, results)
    if opts.profile:
        prof = worker.profile(opts, stopper, work)
    if opts.memory:
        log("RSS of one worker")
        mem = worker.memory(opts, stopper, work)
    return results, prof, mem


def write(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_report(opts, ctx, t0):
    write(opts.out, report.report(ctx))
    if opts.figures:
        write(opts.figures, json.dumps(report.figures(ctx), indent=2) + "\n")
    for line in report.summary_lines(ctx):
        print(line)
    log("wrote %s in %.0f s" % (opts.out, time.monotonic() - t0))


def main(argv):
    opts = parse_args(argv)
    preflight(opts)
    base = report.load_baseline(opts.baseline) if opts.baseline else None
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="tp-bench-")
    os.chmod(work, 0o755)              # the servers' user must reach its dirs
    runner.snapshot_programs(work)
    stopper = runner.Stopper()
    ok = False
    try:
        facts = report.machine()
        results, prof, mem = measure(opts, stopper, work)
        base_name = (os.path.relpath(opts.baseline, paths.SRCDIR)
                     if opts.baseline == paths.BASELINE else opts.baseline)
        ctx = report.Ctx(opts, facts, results, prof, mem, started, time.monotonic() - t0,
                         base, base_name)
        write_report(opts, ctx, t0)
        ok = True
    except KeyboardInterrupt as e:
        log("interrupted (%s): stopping everything" % (e or "Ctrl-C"))
    finally:
        stopper.close()
        runner.reap_children()
        if opts.keep or not ok:
            log("logs kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
