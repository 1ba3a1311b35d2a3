"""report.py - the report of a benchmark run (BENCHMARKS.md, or bench/quick.md
for the short run), from the figures runner.py and worker.py measured: one
function per section; the targets of rows.TARGETS evaluated by the metrics
of METRICS; the "Before and after" table against a baseline file
(bench/baseline.json: the first full run's figures)."""
import hashlib
import json
import operator
import os
import platform
import re
import subprocess

from paths import BUILDDIR, PROGRAMS, SRCDIR
from rows import (HEADERS, KEY_PHASES, PEER_BATCH, PEER_LOG_FORMAT, PEER_MAX_MESSAGE,
                  PEER_QUEUE_SIZE, PEER_RSYSLOG_CONF, QUERY, RATIOS, REGION, ROWS, SLOW_MS,
                  TARGETS)


# ------------------------------------------------------------- the machine

def cmd_out(argv):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=20)
        return (p.stdout + p.stderr).decode("utf-8", "replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = f.read()
    models = re.findall(r"^model name\s*:\s*(.*)$", cpu, re.M)
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    first = lambda s: s.splitlines()[0] if s else "?"   # noqa: E731
    version = "?"
    try:
        with open(os.path.join(BUILDDIR, "config.h")) as f:
            version = re.search(r'#define PACKAGE_VERSION "([^"]*)"', f.read()).group(1)
    except (OSError, AttributeError):
        pass
    commit = cmd_out(["git", "-C", SRCDIR, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", SRCDIR, "status", "--porcelain", "--untracked-files=no"])
    changed = sorted(line.split(None, 1)[1] for line in dirty.splitlines()
                     if len(line.split(None, 1)) == 2)
    with open(PROGRAMS["trackpixel"], "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return {
        "cores": os.cpu_count(),
        "cpu": models[0] if models else platform.processor() or "?",
        "mem_gib": mem / 1024 / 1024,
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "lighttpd": first(cmd_out(["lighttpd", "-v"])),
        "apache2": first(cmd_out(["apache2", "-v"])).replace("Server version: ", ""),
        "mod_fcgid": cmd_out(["sh", "-c", "dpkg-query -W -f '${Version}' libapache2-mod-fcgid"]),
        "nginx": cmd_out(["nginx", "-v"]).replace("nginx version: ", ""),
        "rsyslog": first(cmd_out(["rsyslogd", "-v"])),
        "libcurl": cmd_out(["pkg-config", "--modversion", "libcurl"]),
        "openssl": first(cmd_out(["openssl", "version"])),
        "json-c": cmd_out(["pkg-config", "--modversion", "json-c"]),
        "wrk": first(cmd_out(["wrk", "-v"])),
        "valgrind": cmd_out(["valgrind", "--version"]),
        "python": platform.python_version(),
        "trackpixel": "%s (git %s%s; the binary's SHA-256 starts %s)"
                      % (version, commit, ", with uncommitted changes to " + ", ".join(changed)
                         if changed else "", digest),
        "load_before": loadavg(),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " / ".join(f.read().split()[:3])


def ms(us):
    return "%.2f ms" % (us / 1000.0) if us < 100000 else "%.0f ms" % (us / 1000.0)



def verdict(ok):
    return "**met**" if ok else "**not met**"


def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def ratios(results, a, b):
    """[a/b of each pair of runs]: the rows' own runs, then the repeats
    (runner.ratio_repeats); [] when a row is missing."""
    if a not in results or b not in results:
        return []
    ra, rb = results[a], results[b]
    return [ra["rps"] / rb["rps"]] + [x / y for x, y in zip(ra.get("repeats", []),
                                                          rb.get("repeats", []))]


def per_request_us(r, group):
    """CPU of a group of processes per request served, in microseconds."""
    return sum(r["cpu"].get(group, (0, 0))) / r["requests"] * 1e6


def note(n, r):
    parts = []
    if "workers" in r:
        first, last, gone = r["workers"]
        if gone:
            parts.append("%d processes at the start, %d of them replaced during the run "
                         "(%d at the end)" % (first, gone, last))
        else:
            parts.append("%d processes" % first)
    if "docs" in r:
        served = r["requests"] - r["status"]
        parts.append("%d documents reached the stand-in for %d pixels counted by wrk "
                     "(requests in flight when wrk stops are not counted)" % (r["docs"], served))
        parts.append("%d one by one (`_create`), %d in %d `_bulk` requests; %s"
                     % (r["es_creates"], r["es_bulk_docs"], r["es_bulks"],
                        "every request signed" if r["es_signed"] == r["es_requests"] else
                        "%d of %d requests signed" % (r["es_signed"], r["es_requests"])))
    if "peer_docs" in r:
        parts.append("%d documents reached the stand-in for %d requests nginx served during the "
                     "run (lines of its access log)%s, in %d `_bulk` requests"
                     % (r["peer_docs"], r["peer_served"],
                        "; rsyslog shipped the last of them %.1f s after the run" % r["drain_s"]
                        if r["peer_drained"] else
                        "; rsyslog had not shipped them all %.0f s after the run" % r["drain_s"],
                        r["es_bulks"]))
        if r["peer_rejected_bytes"]:
            parts.append("rsyslog's errorFile holds %d bytes (documents or requests the "
                         "cluster refused)" % r["peer_rejected_bytes"])
    if "docs_during" in r:
        parts.append("%d documents delivered during the warm-up and the run" % r["docs_during"])
    if "spool_bytes" in r:
        parts.append("%.1f MB waiting in %d spool files afterwards"
                     % (r["spool_bytes"] / 1e6, r["spool_files"]))
    return "; ".join(parts)




# ------------------------------------------------------- reading the results
# Each function says, in words, what one thing of the run's figures shows,
# or returns None when the run does not show it.

def note_steal(ctx):
    stolen = []
    for n in sorted(ctx.results):
        mach = ctx.results[n].get("cpu", {}).get("machine")
        secs = ctx.results[n].get("duration_us", 0) / 1e6
        if mach and secs and mach[1] / secs >= 0.1:
            stolen.append("%d (%.2f cores)" % (n, mach[1] / secs))
    if not stolen:
        return None
    return ("The hypervisor gave part of this machine's cores to other machines (steal) "
            "during row%s %s: those rows measured less than this machine can do, and the "
            "targets that compare them are not a clean measurement."
            % ("s" if len(stolen) > 1 else "", ", ".join(stolen)))


def note_cpu_4_against_3(ctx):
    r, g = ctx.results, "FastCGI processes"
    if 3 not in r or 4 not in r:
        return None
    cpu3, cpu4 = r[3].get("cpu", {}), r[4].get("cpu", {})
    if g not in cpu3 or g not in cpu4 or not r[3]["requests"] or not r[4]["requests"]:
        return None
    per3, per4 = per_request_us(r[3], g), per_request_us(r[4], g)
    return ("Row 4 against row 3: a trackpixel process used %.0f us of CPU per hit where the "
            "bare pixel used %.0f us (%.1f times as much); lighttpd %.0f and %.0f us, wrk %.0f "
            "and %.0f us, the stand-in %.0f us. On %d cores shared by all of them, that is "
            "what the ratio 4/3 = %.2f measures."
            % (per4, per3, per4 / per3 if per3 else 0, per_request_us(r[4], "web server"),
               per_request_us(r[3], "web server"), per_request_us(r[4], "wrk"),
               per_request_us(r[3], "wrk"), per_request_us(r[4], "stand-in"),
               os.cpu_count(), r[4]["rps"] / r[3]["rps"]))


def note_batching(ctx):
    r4 = ctx.results.get(4, {})
    if r4.get("es_creates") and not r4.get("es_bulk_docs"):
        return ("In row 4 every document went out in a request of its own (`_create`, posted "
                "by the worker that took the hit, after the pixel and before it accepts the "
                "next hit): no batching happened.")
    if r4.get("es_bulks"):
        return ("In row 4, %d documents went out in %d `_bulk` requests (%.1f a request)."
                % (r4["es_bulk_docs"], r4["es_bulks"], r4["es_bulk_docs"] / r4["es_bulks"]))
    return None


def note_slow_cluster(ctx):
    r6, workers = ctx.results.get(6), ctx.opts.workers
    if not r6 or r6["p99"] <= 100000 or r6["rps"] >= 2 * workers * 1000.0 / SLOW_MS:
        return None
    return ("Row 6: the pixel's latency follows the cluster's. A worker posts each hit before "
            "it accepts the next one, so with a cluster that takes %d ms each of the %d "
            "processes serves about %.1f hits a second (%.0f/s in all, %.0f/s measured) and "
            "the other requests wait in lighttpd's queue."
            % (SLOW_MS, workers, 1000.0 / SLOW_MS, workers * 1000.0 / SLOW_MS, r6["rps"]))


def note_cluster_down(ctx):
    r = ctx.results
    if 7 not in r or 4 not in r or r[7]["rps"] <= r[4]["rps"]:
        return None
    return ("Row 7 is faster than row 4: while the cluster is known to be down a hit costs a "
            "journal append and no post (the deliverer thread retries with backoff); %.0f MB "
            "were waiting in the spool at the end." % (r[7].get("spool_bytes", 0) / 1e6))


def note_hung_cluster(ctx):
    r9 = ctx.results.get(9)
    if not r9 or r9["p99"] <= 1000000:
        return None
    return ("Row 9: a worker that posts a hit itself waits for the cluster's answer before it "
            "takes its next request; with a cluster that never answers that is "
            "TRACKPIXEL_TIMEOUT_MS (max %.1f s here), and the requests queued behind that "
            "worker wait as long." % (r9["max"] / 1e6))


def note_apache_tail(ctx):
    slow = [n for n in (5, 8) if n in ctx.results and ctx.results[n]["p99"] > 500000]
    if not slow:
        return None
    text = ("Row%s %s, p99 near or above 1 s: wrk keeps %d requests in flight and mod_fcgid "
            "has %d processes; a request that finds none idle makes mod_fcgid 2.3.9 sleep a "
            "whole second before it looks again (fcgid_bridge.c)."
            % ("s" if len(slow) > 1 else "", " and ".join(map(str, slow)), ctx.opts.conns,
               ctx.opts.workers))
    if slow == [5, 8]:
        text += (" Row 8 (the bare pixel) has the same tail, so it is mod_fcgid's, not "
                 "trackpixel's; keeping concurrent requests below FcgidMaxProcessesPerClass "
                 "avoids it.")
    return text


NOTES = [note_steal, note_cpu_4_against_3, note_batching, note_slow_cluster,
         note_cluster_down, note_hung_cluster, note_apache_tail]


# ----------------------------------------------------------------- targets
# A metric takes the run (ctx) and a rows.Target and returns (value to
# compare with the threshold, the "measured" text, fields for the label),
# or None when the run lacks what it needs.

def metric_ratio_median(ctx, t):
    rs = ratios(ctx.results, *t.rows)
    if not rs:
        return None
    q = median(rs)
    return q, "%.2f%s" % (q, " (median of %d pairs, %.2f to %.2f)" % (len(rs), min(rs), max(rs))
                          if len(rs) > 1 else ""), {}


def metric_p99_over(ctx, t):
    (n, ref), r = t.rows, ctx.results
    if n not in r or ref not in r:
        return None
    d = (r[n]["p99"] - r[ref]["p99"]) / 1000.0
    return d, "%s (%+.2f ms)" % (ms(r[n]["p99"]), d), {"ref": ms(r[ref]["p99"])}


def metric_rps_share(ctx, t):
    (n, ref), r = t.rows, ctx.results
    if n not in r or ref not in r:
        return None
    q = r[n]["rps"] / r[ref]["rps"]
    return q, "%.0f/s (%.0f %% of %d)" % (r[n]["rps"], 100 * q, ref), {
        "within": 100 * (1 - t.threshold), "floor": t.threshold * r[ref]["rps"]}


def cpu_pairs(results, a, b):
    """[(a's, b's) CPU of the FastCGI processes per request, us] of each pair
    of runs: the rows' own, then the repeats; [] when a row is missing."""
    g = "FastCGI processes"
    if a not in results or b not in results:
        return []
    ra, rb = results[a], results[b]
    if g not in ra.get("cpu", {}) or g not in rb.get("cpu", {}) or \
            not ra["requests"] or not rb["requests"]:
        return []
    return [(per_request_us(ra, g), per_request_us(rb, g))] + list(
        zip(ra.get("repeats_fcgi_us", []), rb.get("repeats_fcgi_us", [])))


def metric_cpu_over(ctx, t):
    pairs = cpu_pairs(ctx.results, *t.rows)
    if not pairs:
        return None
    over = median([x - y for x, y in pairs])
    mine, bare = median([x for x, _ in pairs]), median([y for _, y in pairs])
    return over, "%.0f us (%+.0f us; median of %d pairs, %+.0f to %+.0f)" % (
        mine, over, len(pairs), min(x - y for x, y in pairs),
        max(x - y for x, y in pairs)), {"ref": "%.0f us" % bare}


def metric_rss_max(ctx, t):
    mem = ctx.mem
    if not mem:
        return None
    first, last = mem["steady"][0], mem["steady"][-1]
    mib = max(p[2]["VmRSS"] for p in mem["steady"]) / 1024
    floor = mem.get("floor") or []
    return mib, "%.2f MiB (largest from %d to %d hits)%s" % (
        mib, first[0], last[0],
        "; the libraries alone, initialized, before any hit: %.2f MiB"
        % (floor[-1][1]["VmRSS"] / 1024) if floor else ""), {}


def metric_rss_growth(ctx, t):
    if not ctx.mem:
        return None
    first, last = ctx.mem["steady"][0], ctx.mem["steady"][-1]
    growth = last[2]["VmRSS"] - first[2]["VmRSS"]
    return growth, "%+d KiB" % growth, {"first": first[0], "last": last[0]}


def metric_backlog_growth(ctx, t):
    outage = [p for p in ctx.mem["points"] if p[1]] if ctx.mem else []
    if len(outage) < 2:
        return None
    first_out = outage[0][2]["VmRSS"] - ctx.mem["steady"][-1][2]["VmRSS"]
    grown = outage[-1][2]["VmRSS"] - outage[0][2]["VmRSS"]
    return grown, ("%+d KiB (the first backlog: %+d KiB, which the next one reuses)"
                   % (grown, first_out)), {"hits": ctx.opts.outage_hits}


METRICS = {
    "ratio_median": metric_ratio_median,
    "p99_over": metric_p99_over,
    "rps_share": metric_rps_share,
    "cpu_over": metric_cpu_over,
    "rss_max": metric_rss_max,
    "rss_growth": metric_rss_growth,
    "backlog_growth": metric_backlog_growth,
}
COMPARE = {"<=": operator.le, ">=": operator.ge}


def evaluate_targets(ctx):
    """[(label, measured, met)] of the rows.TARGETS this run measured."""
    out = []
    for t in TARGETS:
        got = METRICS[t.metric](ctx, t)
        if got is None:
            continue
        value, measured, fields = got
        out.append((t.label.format(threshold=t.threshold, **fields), measured,
                    COMPARE[t.op](value, t.threshold)))
    return out


# ------------------------------------------------------ figures and baseline
# A run's figures, in the form of bench/baseline.json: the "Before and
# after" table compares this run's with a baseline file's, and
# bench.py --figures writes them, so that a later run can compare with them
# (bench.py --baseline).

def figures(ctx):
    """The figures of this run that the before/after table compares."""
    out = {"label": "run of %s UTC" % ctx.started.strftime("%Y-%m-%d %H:%M")}
    if ctx.prof:
        per_hit = {"all": round(ctx.prof["cost"]["TOTAL"])}
        for name, _, v, _ in ctx.prof["phases"]:
            per_hit[name] = round(v)
        out["instructions_per_hit"] = per_hit
    r4 = ctx.results.get(4)
    if r4 and r4.get("cpu") and r4["cpu"].get("FastCGI processes") and r4["requests"]:
        cpu, n = r4["cpu"]["FastCGI processes"], r4["requests"]
        out["row4_fastcgi_cpu_us_per_hit"] = {"all": round(sum(cpu) / n * 1e6),
                                              "system": round(cpu[1] / n * 1e6)}
    rs = ratios(ctx.results, 4, 3)
    if rs:
        out["ratio_4_3_median"] = round(median(rs), 2)
    if ctx.mem:
        out["rss_max_mib"] = round(max(p[2]["VmRSS"] for p in ctx.mem["steady"]) / 1024, 2)
    return out


def load_baseline(path):
    """A figures file (bench/baseline.json), or None when there is none."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def before_after_rows(base, now):
    """[(what, baseline's figure, this run's)] of the figures both have."""
    rows = []
    b_ins, n_ins = base.get("instructions_per_hit", {}), now.get("instructions_per_hit", {})
    for name in n_ins:
        if name in b_ins:
            what = ("instructions per hit (callgrind), all" if name == "all" else "- " + name)
            rows.append((what, "%d" % b_ins[name], "%d" % n_ins[name]))
    b, n = base.get("row4_fastcgi_cpu_us_per_hit"), now.get("row4_fastcgi_cpu_us_per_hit")
    if b and n:
        rows.append(("row 4: CPU of the trackpixel processes per hit, us (system part)",
                     "%d (%d)" % (b["all"], b["system"]), "%d (%d)" % (n["all"], n["system"])))
    for key, what, fmt in (("ratio_4_3_median", "4/3 (median of the pairs)", "%.2f"),
                           ("rss_max_mib", "one worker's largest RSS, MiB", "%.2f")):
        if key in base and key in now:
            rows.append((what, fmt % base[key], fmt % now[key]))
    return rows


def section_before_after(add, ctx):
    if not ctx.base:
        return
    rows = before_after_rows(ctx.base, figures(ctx))
    if not rows:
        return
    add("## Before and after")
    add("")
    add("This run against the %s, whose figures are in `%s`."
        % (ctx.base.get("label", "baseline"), ctx.base_name))
    add("")
    add("| | %s | this run |" % ctx.base.get("label", "baseline"))
    add("|---|---:|---:|")
    for what, a, b in rows:
        add("| %s | %s | %s |" % (what, a, b))
    add("")


# ------------------------------------------------------------ the peer
# Row 10 against row 4: the figures side by side, then what each pipeline's
# document holds and what each guarantees (the configurations' behaviour, as
# the programs document it; the stand-in checks nothing, so the run itself
# shows only the figures).

PEER_COMPARISON = [
    ("the document",
     "API Gateway's passthrough shape: the query string parsed into "
     "`params.querystring` (names and values decoded), every request header but "
     "`Authorization`, the client's address, method and path, a request-id (a UUID, also "
     "the answer's `X-Request-Id` and the document's `_id`), the time in milliseconds "
     "(`date`, `@timestamp`); a POST's JSON body (`sendBeacon`) as `body-json`",
     "the fields its `log_format` names: the time to the second, `msec`, nginx's "
     "`$request_id`, the client's address, method, path, the query string as one string "
     "(not parsed: an ingest pipeline or rsyslog's `mmnormalize` would have to), status, "
     "and the headers it names (Host, User-Agent, Referer, Accept-Language), no others; "
     "no POST body"),
    ("before the pixel is served",
     "the document is in the worker's journal (one `write()`, no fsync by default)",
     "nothing: nginx writes the log line after the answer (one `write()`, no fsync)"),
    ("cluster down or slow",
     "the journal keeps every hit; the delivery thread retries with backoff, without end; "
     "the pixel does not wait",
     "`action.resumeRetryCount=\"-1\"`: rsyslog retries without end; its action queue holds "
     "%d documents in memory, then spills to its work directory (`queue.filename`); nginx "
     "does not wait. With rsyslog's default (0) what fails while the cluster is down is "
     "dropped" % PEER_QUEUE_SIZE),
    ("a request retried (timeout, 5xx)",
     "every document has its id (`_create`, or `create` in `_bulk`): a retry never stores "
     "a hit twice",
     "the documents have no id (`index` actions): a `_bulk` request sent again after a "
     "timeout stores its documents twice"),
    ("the shipper killed (crash, SIGKILL)",
     "the next worker takes the journal over; what was delivered is marked: every hit "
     "once",
     "`imfile` saves how far it has read at shutdown (`persistStateInterval` 0, its "
     "default), not as documents are shipped, and the queue writes to disk only when its "
     "memory is full or at shutdown: after a crash rsyslogd starts again from the offset "
     "saved last, and what was shipped since is stored twice"),
    ("documents the cluster refuses",
     "429 and 5xx are retried; any other refusal goes to the dead-letter file with the "
     "cluster's reason",
     "written with the cluster's answer to `errorFile` and not retried, 429s inside a "
     "`_bulk` answer included (unless `retryfailures` and a ruleset that resubmits them)"),
    ("bytes that are not UTF-8",
     "become U+FFFD: the document is always valid JSON",
     "`escape=json` escapes `\"`, `\\` and control characters and passes other bytes as "
     "they came: a header that is not UTF-8 makes a line the cluster refuses (to "
     "`errorFile`)"),
    ("long values",
     "cut on a character boundary and listed in `\"truncated\"`; the document stays "
     "within `TRACKPIXEL_MAX_DOC`",
     "a line longer than rsyslog's `maxMessageSize` (%s here, 8k by default) is cut, is "
     "no longer JSON, and is refused (to `errorFile`); the rest of the line is dropped"
     % PEER_MAX_MESSAGE),
    ("authentication",
     "SigV4 signing (Amazon OpenSearch Service with IAM)",
     "HTTP basic authentication or TLS client certificates, no SigV4: an IAM-protected "
     "domain needs a signing proxy in between"),
]


def both_cpu(r, group):
    """CPU per request served of the web server and group together, in us."""
    return per_request_us(r, "web server") + per_request_us(r, group)


def peer_figures(r4, r10):
    """[(what, row 4's, row 10's)] of the side-by-side table."""
    rows = [("requests/s", "%.0f" % r4["rps"], "%.0f" % r10["rps"]),
            ("p50 / p99", "%s / %s" % (ms(r4["p50"]), ms(r4["p99"])),
             "%s / %s" % (ms(r10["p50"]), ms(r10["p99"])))]
    if r4.get("cpu") and r10.get("cpu") and r4["requests"] and r10["requests"]:
        rows += [
            ("CPU per hit, web server (lighttpd; nginx), us",
             "%.0f" % per_request_us(r4, "web server"), "%.0f" % per_request_us(r10, "web server")),
            ("CPU per hit, the FastCGI processes (trackpixel) / the shipper (rsyslogd), us",
             "%.0f" % per_request_us(r4, "FastCGI processes"),
             "%.0f" % per_request_us(r10, "shipper")),
            ("CPU per hit, both, us (the stand-in and wrk left out)",
             "**%.0f**" % both_cpu(r4, "FastCGI processes"), "**%.0f**" % both_cpu(r10, "shipper"))]
    if "docs" in r4 and "peer_docs" in r10:
        served4 = r4["requests"] + r4["warmup_requests"]
        rows.append(("documents delivered / requests served",
                     "%.3f (%d / %d: warm-up and run, as wrk counts them)"
                     % (r4["docs"] / served4 if served4 else 0, r4["docs"], served4),
                     "%.3f (%d / %d: the run, as nginx logged them)"
                     % (r10["peer_docs"] / r10["peer_served"] if r10["peer_served"] else 0,
                        r10["peer_docs"], r10["peer_served"])))
        rows.append(("documents per `_bulk` request",
                     "%.1f" % (r4["es_bulk_docs"] / r4["es_bulks"]) if r4["es_bulks"] else "-",
                     "%.1f" % (r10["es_bulk_docs"] / r10["es_bulks"]) if r10["es_bulks"]
                     else "-"))
        rows.append(("requests signed (SigV4)", "%d of %d" % (r4["es_signed"], r4["es_requests"]),
                     "%d of %d" % (r10["es_signed"], r10["es_requests"])))
    return rows


def others_cores(r):
    """The cores the machine spent on other things during a row's run."""
    mach = r.get("cpu", {}).get("machine")
    secs = r.get("cpu_window_s") or r["duration_us"] / 1e6
    return max(0.0, mach[0] - mach[2]) / secs if mach and secs else 0.0


def peer_reading(r4, r10):
    """One paragraph: what the figures say."""
    text = ("The peer served %.2f times the requests per second of lighttpd + trackpixel"
            % (r10["rps"] / r4["rps"]))
    if r4.get("cpu") and r10.get("cpu") and r4["requests"] and r10["requests"]:
        a, b = both_cpu(r4, "FastCGI processes"), both_cpu(r10, "shipper")
        text += (" and used %.0f us of CPU per hit for web server and shipper together, "
                 "against %.0f us for lighttpd and trackpixel (%.0f %% of it)"
                 % (b, a, 100 * b / a if a else 0))
    text += (". Its nginx answers the pixel from memory and appends one line to a file; "
             "trackpixel's web server hands each hit to a FastCGI process, which builds a "
             "richer document, journals it before the pixel and signs every request. What "
             "that buys is in the table below; what it costs is this row against row 4.")
    busy = [(n, others_cores(r)) for n, r in ((4, r4), (10, r10)) if others_cores(r) >= 0.25]
    if busy:
        text += (" The machine was not the run's own: %s went to other processes (the CPU "
                 "table's others), and the two pipelines share the cores with wrk and the "
                 "stand-in, so requests per second moves with whatever else runs; the CPU "
                 "per hit is the figure to compare."
                 % " and ".join("%.2f cores during row %d" % (c, n) for n, c in busy))
    if r10.get("peer_served") and r10["peer_docs"] < r10["peer_served"]:
        text += (" The peer lost %d of the run's %d hits with a cluster that never failed."
                 % (r10["peer_served"] - r10["peer_docs"], r10["peer_served"]))
    return text


def section_peer(add, ctx):
    r4, r10 = ctx.results.get(4), ctx.results.get(10)
    if not r10:
        return
    add("## trackpixel and the peer")
    add("")
    add("Row 10 is the pipeline many administrators would build instead of trackpixel: "
        "nginx answers the pixel itself (`empty_gif`, a 43-byte GIF) and writes one JSON "
        "line per request to its access log, rsyslog's `imfile` tails that file and "
        "`omelasticsearch` sends the lines to the cluster in `_bulk` requests, with the "
        "settings of an administrator who cares about loss. nginx (`http` block):")
    add("")
    add("    log_format pixel escape=json '%s';" % PEER_LOG_FORMAT)
    add("    access_log ACCESS_LOG pixel;")
    add("")
    add("rsyslogd (`rsyslogd -n -f CONF -i PIDFILE`), all of its configuration:")
    add("")
    conf = PEER_RSYSLOG_CONF.format(
        work="WORKDIR", max_message=PEER_MAX_MESSAGE, log="ACCESS_LOG", port="PORT",
        errors="ERRORS_FILE", queue_size=PEER_QUEUE_SIZE, batch=PEER_BATCH,
        messages="MESSAGES_FILE")
    for line in conf.rstrip("\n").split("\n"):
        add("    " + line)
    add("")
    if r4:
        add("| | lighttpd + trackpixel (row 4) | nginx + rsyslog (row 10) |")
        add("|---|---:|---:|")
        for what, a, b in peer_figures(r4, r10):
            add("| %s | %s | %s |" % (what, a, b))
        add("")
        add(peer_reading(r4, r10))
        add("")
    add("What each document holds and what each pipeline guarantees (as the programs "
        "behave with these configurations; the stand-in checks nothing, so the run "
        "measures only the figures above):")
    add("")
    add("| | trackpixel | nginx + rsyslog |")
    add("|---|---|---|")
    for what, tp, peer in PEER_COMPARISON:
        add("| %s | %s | %s |" % (what, tp, peer))
    add("")


# ---------------------------------------------------------------- sections
# Each takes add (appends one line) and the run (ctx).

def section_machine(add, ctx):
    m = ctx.machine
    add("# trackpixel benchmarks")
    add("")
    add("Generated by `make bench` (bench/bench.py%s) on %s UTC, in %.0f s. Do not edit: "
        "run it again." % (", quick mode" if ctx.opts.quick else "",
                           ctx.started.strftime("%Y-%m-%d %H:%M"), ctx.elapsed))
    add("")
    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    add("| cores | %d |" % m["cores"])
    add("| CPU | %s |" % m["cpu"])
    add("| memory | %.1f GiB |" % m["mem_gib"])
    add("| system | %s, Linux %s |" % (m["os"], m["kernel"]))
    for k in ("lighttpd", "apache2", "mod_fcgid", "nginx", "rsyslog", "libcurl", "openssl", "json-c",
              "wrk", "valgrind", "trackpixel"):
        add("| %s | %s |" % (k, m[k]))
    add("| load average (1/5/15 min) | %s before the run, %s after it |"
        % (m["load_before"], loadavg()))
    add("")


def section_method(add, ctx):
    opts, cores = ctx.opts, ctx.machine["cores"]
    add("## How it was measured")
    add("")
    add("- Load: `wrk -t%d -c%d -d%ds --timeout 10s --latency` on 127.0.0.1, the same for "
        "every row, after a %d s warm-up run on the same server that is not counted "
        "(row 7: its warm-up runs while the stand-in is up, which is then stopped). In rows 6 "
        "and 9 the warm-up also takes each worker's first hit, which waits up to 4 x "
        "TRACKPIXEL_SLOW_MS (200 ms) for the slow cluster before the worker leaves posting to "
        "its delivery thread. Client, servers and stand-in share "
        "the machine's %d cores." % (opts.threads, opts.conns, opts.duration, opts.warmup,
                                      cores))
    add("- The request, for every row: `GET /pixel?%s` with the headers a browser sends "
        "for an image (%s)." % (QUERY, ", ".join(n for n, _ in HEADERS)))
    add("- Rows 2-9 run the shipped `lighttpd/50-trackpixel.conf` and "
        "`apache/trackpixel.conf`, rendered by `tests/webserver.py` as the tests do, with one "
        "change: the number of worker processes, **%d** for rows 3 to 9 (lighttpd "
        "`max-procs` %s in the shipped file, Apache `FcgidMaxProcessesPerClass` %s in the "
        "shipped file; Apache's processes are started by the warm-up). Row 3 is "
        "`bench/bare_pixel` through the very same lighttpd configuration: it writes the "
        "bytes trackpixel writes (status, headers, a fixed X-Request-Id, the 60-byte BMP) "
        "and does nothing else. Everything else as shipped (e.g. Apache's "
        "`FcgidMaxRequestsPerProcess %s`: a process is replaced after that many hits, "
        "also during a run)."
        % (opts.workers, opts.shipped_lighttpd, opts.shipped_apache, opts.shipped_apache_reqs))
    add("- Rows 4-7 and 9 as in production: documents signed with SigV4 (long-term keys, "
        "region %s, service es), each hit journaled first in a spool directory (no fsync, the "
        "default), then delivered the way the program does it: one by one with `_create`, "
        "or by the deliverer thread with `_bulk` (the notes say how many went which way). The "
        "cluster is `bench/es_fast`, a one-thread "
        "epoll stand-in that answers 201 (one item per document for `_bulk`) without "
        "verifying, so that it is not the bottleneck; row 6 answers %d ms after each request; "
        "in row 7 it is stopped after the warm-up, so the workers see their open "
        "connections close and then connections refused; in row 9 it accepts connections "
        "and requests and never answers (a hung cluster: every post ends at "
        "TRACKPIXEL_TIMEOUT_MS, 5000 in the shipped configuration)." % (REGION, SLOW_MS))
    add("- nginx (row 1): its own configuration, `worker_processes auto` (%d here), "
        "`access_log off`, `location = /pixel { empty_gif; }`." % cores)
    add("- Row 10, the peer: the same nginx with a JSON access log, and an rsyslogd of its "
        "own (its configuration, work directory and pid file; no system inputs) that tails "
        "the log with `imfile` and ships it with `omelasticsearch` to the same fast "
        "stand-in; configurations and what each pipeline guarantees under \"trackpixel and "
        "the peer\" below. Its warm-up's documents are all shipped before the run starts, "
        "and the run's are counted at the stand-in once rsyslog has shipped them all.")
    add("")


def section_results(add, ctx):
    add("## Results")
    add("")
    add("| # | server | requests/s | p50 | p99 | errors | notes |")
    add("|---|---|---:|---:|---:|---:|---|")
    for n in sorted(ctx.results):
        r = ctx.results[n]
        add("| %d | %s | %.0f | %s | %s | %d | %s |"
            % (n, ROWS[n].title, r["rps"], ms(r["p50"]), ms(r["p99"]), r["errors"],
               note(n, r)))
    add("")
    add("errors: wrk's connect, read, write and timeout errors plus non-2xx answers.")
    add("")


CPU_GROUPS = ["web server", "FastCGI processes", "shipper", "stand-in", "wrk"]


def cpu_row(n, r, cores):
    """One line of the CPU table."""
    cells, total = [], 0.0
    for g in CPU_GROUPS:
        if g not in r["cpu"]:
            cells.append("")
            continue
        u, sy = r["cpu"][g]
        total += u + sy
        cells.append("%.0f (%.0f)" % ((u + sy) / r["requests"] * 1e6, sy / r["requests"] * 1e6))
    mach = r["cpu"].get("machine")
    others = ""
    secs = r.get("cpu_window_s") or r["duration_us"] / 1e6
    if mach:
        others = "%.2f cores%s" % (max(0.0, mach[0] - mach[2]) / secs,
                                   " (steal %.2f)" % (mach[1] / secs) if mach[1] else "")
    return "| %d | %s | %.0f | %.2f of %d | %s |" % (n, " | ".join(cells),
                                                   total / r["requests"] * 1e6,
                                                   total / secs, cores, others)


def section_cpu(add, ctx):
    results, cores = ctx.results, ctx.machine["cores"]
    if not any("cpu" in r for r in results.values()):
        return
    add("### Where the CPU goes")
    add("")
    add("CPU time (user + system, from `/proc/<pid>/stat`) each group of processes used "
        "during the measured run, per request served, in microseconds; in brackets the "
        "system (kernel) part. All %d cores together: %.0f us of CPU per second."
        % (cores, cores * 1e6))
    add("")
    add("| # | " + " | ".join(CPU_GROUPS) + " | all | cores busy | others |")
    add("|---|" + "---:|" * (len(CPU_GROUPS) + 3))
    for n in sorted(results):
        if "cpu" in results[n] and results[n]["requests"]:
            add(cpu_row(n, results[n], cores))
    add("")
    add("others: what the machine's cores did during the run besides the processes "
        "above, in cores (from /proc/stat: other processes, interrupts, and time a "
        "hypervisor gave to other machines, \"steal\"). A row with much of it ran "
        "on a machine that was not its own.")
    add("")
    if 10 in results and "cpu" in results[10]:
        add("Row 10: the shipper is rsyslogd; its row counts from the start of the run until "
            "rsyslog had shipped the last line the run logged (%.1f s after the run), and its "
            "cores busy and others are over that time."
            % results[10]["drain_s"])
        add("")
    replaced = [str(n) for n in sorted(results)
                if "cpu" in results[n] and results[n].get("workers", (0, 0, 0))[2]]
    if replaced:
        add("Row%s %s: processes were replaced during the run (mod_fcgid's "
            "`FcgidMaxRequestsPerProcess`); what a replaced process used is missing, so "
            "the FastCGI figure is a lower bound."
            % ("s" if len(replaced) > 1 else "", " and ".join(replaced)))
        add("")


def section_ratios(add, ctx):
    results = ctx.results
    lines = []
    for a, b, what in RATIOS:
        rs = ratios(results, a, b)
        if not rs:
            continue
        lines.append("- %d/%d = %.2f (%s)" % (a, b, rs[0], what))
        if len(rs) > 1:
            lines.append("- %d/%d over %d alternating runs of rows %d and %d (the table's and "
                         "%d more pairs): %s; median %.2f. Row %d: %s requests/s; row %d: %s "
                         "requests/s."
                         % (a, b, len(rs), b, a, len(rs) - 1, ", ".join("%.2f" % x for x in rs),
                            median(rs), b, ", ".join("%.0f" % x for x in
                                                     [results[b]["rps"]] + results[b]["repeats"]),
                            a, ", ".join("%.0f" % x for x in
                                         [results[a]["rps"]] + results[a]["repeats"])))
    if not lines:
        return
    add("## Ratios")
    add("")
    for line in lines:
        add(line)
    add("")


def section_targets(add, ctx):
    targets = evaluate_targets(ctx)
    if not targets:
        return
    add("## Targets")
    add("")
    add("| target | measured | |")
    add("|---|---|---|")
    for what, got, ok in targets:
        add("| %s | %s | %s |" % (what, got, verdict(ok)))
    add("")


def section_notes(add, ctx):
    notes = [text for text in (fn(ctx) for fn in NOTES) if text]
    if not notes:
        return
    add("## Reading the results")
    add("")
    for text in notes:
        add("- " + text)
    add("")


def section_instructions(add, ctx):
    prof = ctx.prof
    if not prof:
        return
    c = prof["cost"]
    add("## Instructions per hit")
    add("")
    add("`valgrind --tool=callgrind` on one trackpixel worker (the production settings of "
        "rows 4-7 and 9, fast stand-in), fed by `tests/fcgi_client.py` one request at a time "
        "on a new connection each (as lighttpd and mod_fcgid connect). Two runs, of %d and of "
        "%d hits; each figure is (run 2 - run 1) / %d, so start-up, the first connection and "
        "shutdown cancel out. A function's inclusive cost is its own plus that of every "
        "call it makes, as `callgrind_annotate --inclusive=yes` adds them up, but one "
        "figure per function (callgrind_annotate splits some functions in two partial "
        "entries, one per spelling of their source file's name). User-space instructions "
        "only: the kernel's work in system calls is not counted (see the system part of "
        "the CPU table above), and valgrind's CPU model has no SHA extensions, so OpenSSL "
        "hashes with more instructions here than natively."
        % (prof["warm"], prof["warm"] + prof["hits"], prof["hits"]))
    add("")
    add("**%.0f instructions per hit** in all." % c["TOTAL"])
    add("")
    phases = {name: v for name, _, v, _ in prof["phases"]}
    add("Figures to compare across changes: " + ", ".join(
        "**%s %.0f**" % (name, phases[name]) for name in KEY_PHASES if name in phases) +
        " instructions per hit (their rows below).")
    add("")
    add("| phase | functions (inclusive) | instructions/hit | share | |")
    add("|---|---|---:|---:|---|")
    for name, formula, v, what in prof["phases"]:
        add("| %s | `%s` | %.0f | %.0f %% | %s |" % (name, formula, v, 100 * v / c["TOTAL"],
                                                   what))
    add("")
    es = prof["es"]
    add("The stand-in received, over the two runs, %d documents: %d one by one "
        "(`_create`, posted by the hit's own worker loop) and %d in %d `_bulk` requests "
        "(sent by the deliverer thread). `X>Y` is the cost of X's calls to Y only."
        % (es["creates"] + es["bulk_docs"], es["creates"], es["bulk_docs"], es["bulks"]))
    add("")
    add("From run to run the phases of the pixel's own path (request intake to response) "
        "repeat within a few percent (json-c seeds its hash tables at random in each "
        "process).%s" % (" Signing and delivery also depend on how many documents each "
                         "`_bulk` request carries, which depends on timing: compare them "
                         "across runs with care." if es["bulks"] else ""))
    add("")
    add("Largest inclusive costs per hit (named functions of trackpixel and of the "
        "libraries; the libraries' unnamed internal functions are left out):")
    add("")
    add("| function | instructions/hit |")
    add("|---|---:|")
    for v, k in prof["top"][:25]:
        add("| `%s` | %.0f |" % (k, v))
    add("")


def mem_line(hits, k):
    return ("| %s | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB | %d KiB |"
            % (hits, k["VmRSS"], k["RssAnon"], k["RssFile"], k["VmHWM"], k["Pss"], k["Private"]))


def section_memory(add, ctx):
    mem = ctx.mem
    if not mem:
        return
    add("## Memory of one worker")
    add("")
    add("One trackpixel (the production settings of rows 4-7 and 9, fast stand-in), hits "
        "sent one after another by `tests/fcgi_client.py` (%d hits in %.0f s), "
        "`/proc/<pid>/status` read after each step:" % (mem["steady"][-1][0], mem["seconds"]))
    add("")
    add("| hits | VmRSS | RssAnon | RssFile | VmHWM | Pss | Private |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for what, k in mem.get("floor", []):
        add(mem_line("0: " + what, k))
    for hits, what, k in mem["points"]:
        add(mem_line("%d%s" % (hits, " (%s)" % what if what else ""), k))
    add("")
    add("RssFile is the pages of the program and of its shared libraries that the worker "
        "has touched (libcrypto, libc, libcurl and what libcurl links: GnuTLS, Kerberos, "
        "LDAP, ...), mapped 64 KiB around each page used (the kernel's fault-around): the "
        "same pages for every worker and every other process using those libraries. "
        "RssAnon (heap, stacks) is the worker's own. Pss shares each page among the "
        "processes that map it (measured with only this worker running: with 8 workers "
        "it is lower); Private is what this worker alone holds. The two `0:` rows are "
        "bench/lib_floor, a program that links exactly trackpixel's libraries and does "
        "nothing else: what they cost before the first hit.")
    add("")
    if mem.get("libs"):
        add("Largest parts of the RSS after the last step: " + ", ".join(
            "%s %d KiB" % (os.path.basename(k), v) for k, v in mem["libs"]) + ".")
        add("")
    add("The stand-in received %d documents; the worker exited with status %s."
        % (mem["docs"], mem["exit"]))
    add("")


def section_reproduce(add, ctx):
    add("## Reproduce")
    add("")
    add("    apt-get install -y nginx lighttpd apache2 libapache2-mod-fcgid wrk valgrind \\")
    add("        rsyslog rsyslog-elasticsearch")
    add("    ./configure && make && make bench                # this file, about 5 minutes")
    add("    make bench BENCH_QUICK=1                         # short run (CI), bench/quick.md")
    add("")
    add("`bench/bench.py --help` lists the options (duration, connections, rows). Run on an "
        "otherwise idle machine: every process of the run shares its cores.")


SECTIONS = [section_machine, section_method, section_results, section_cpu, section_ratios,
            section_peer, section_targets, section_notes, section_before_after, section_instructions,
            section_memory, section_reproduce]


# ----------------------------------------------------------------- the run

class Ctx:
    """One run's figures, as the sections read them: opts (bench.py's
    options), machine (machine()), results ({row: figures}), prof
    (worker.profile()) and mem (worker.memory()), or None when not
    measured; started (UTC) and elapsed (s); base and base_name: the
    baseline's figures (or None) and its file's name for the report."""

    def __init__(self, opts, machine_facts, results, prof, mem, started, elapsed,
                 base=None, base_name=""):
        self.opts = opts
        self.machine = machine_facts
        self.results = results
        self.prof = prof
        self.mem = mem
        self.started = started
        self.elapsed = elapsed
        self.base = base
        self.base_name = base_name


def report(ctx):
    """The report's text (Markdown)."""
    lines = []
    for section in SECTIONS:
        section(lines.append, ctx)
    return "\n".join(lines) + "\n"


def summary_lines(ctx):
    """What the run prints at its end."""
    out = []
    for n in sorted(ctx.results):
        r = ctx.results[n]
        out.append("%d %-50s %9.0f req/s  p50 %9s  p99 %9s  errors %d"
                   % (n, ROWS[n].title, r["rps"], ms(r["p50"]), ms(r["p99"]), r["errors"]))
    for a, b, _ in RATIOS:
        rs = ratios(ctx.results, a, b)
        if rs:
            out.append("%d/%d = %.2f" % (a, b, rs[0]))
        if len(rs) > 1:
            out.append("%d/%d in %d pairs: %s (median %.2f)"
                       % (a, b, len(rs), " ".join("%.2f" % x for x in rs), median(rs)))
    r10 = ctx.results.get(10)
    if r10 and "peer_docs" in r10:
        out.append("10: %d documents for %d requests nginx served in the run%s"
                   % (r10["peer_docs"], r10["peer_served"],
                      ", shipped %.1f s after it" % r10["drain_s"] if r10["peer_drained"]
                      else ", NOT all shipped %.0f s after it" % r10["drain_s"]))
    if ctx.prof:
        out.append("instructions per hit: %.0f" % ctx.prof["cost"]["TOTAL"])
        for name, formula, v, _ in ctx.prof["phases"]:
            out.append("  %-15s %10.0f   %s" % (name, v, formula))
    if ctx.mem:
        for hits, what, k in ctx.mem["points"]:
            out.append("RSS after %d hits%s: %d KiB" % (hits, " (%s)" % what if what else "",
                                                        k["VmRSS"]))
    return out
