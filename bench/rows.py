"""rows.py - what the benchmark measures, as data: the request, the rows of
the throughput table, the phases of the instructions-per-hit table and the
targets.  runner.py runs the rows, worker.py measures the phases,
report.py evaluates the targets; nothing here runs anything."""
import collections

import paths          # noqa: F401 - makes tests/ importable
import tplib

# One request for every row: a pixel with a campaign's query string and the
# headers a browser sends for an <img>.
QUERY = "utm_source=newsletter&utm_medium=email&utm_campaign=winter-sale&uid=4f3c2a9e&v=3"
HEADERS = [
    ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                   "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
    ("Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Referer", "https://www.example.com/blog/2025/11/winter-sale?ref=home"),
]

# Signing as in production: long-term keys (AWS's documentation example
# keys) and a region.  No session token: Apache's mod_fcgid cannot pass one
# (apache/README.md), and rows 4 and 5 must sign the same way.
KEYS = {"AWS_ACCESS_KEY_ID": tplib.AWS_KEYS["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": tplib.AWS_KEYS["AWS_SECRET_ACCESS_KEY"]}
REGION = tplib.AWS_KEYS["AWS_REGION"]

SLOW_MS = 500
HANG_MS = 60000        # longer than any timeout of the shipped configuration

# The Elasticsearch stand-in (bench/es_fast) of a row:
#   fast  answers at once; the documents it received are counted
#   slow  answers SLOW_MS after each request
#   hung  accepts connections and requests and never answers (HANG_MS)
#   down  up for the warm-up (the workers' connections open), then stopped;
#         the bytes waiting in the spool are counted
#   None  no stand-in (the row does not run trackpixel)
CLUSTER_DELAY_MS = {"fast": 0, "slow": SLOW_MS, "hung": HANG_MS, "down": 0}

# The peer (row 10): what nginx logs for each hit (log_format, escape=json:
# '"' and '\\' and control characters escaped, other bytes as they came), the
# fields an administrator logs for a pixel; and rsyslog's settings for
# shipping it, those of an administrator who cares about loss: _bulk, an
# action queue that spills to disk (queue.filename) and is saved on shutdown,
# and retries without end (action.resumeRetryCount -1; rsyslog's default, 0,
# drops what fails while the cluster is down).
PEER_LOG_FORMAT = (
    '{"@timestamp":"$time_iso8601","msec":$msec,"request_id":"$request_id",'
    '"remote_addr":"$remote_addr","method":"$request_method","uri":"$uri",'
    '"args":"$args","status":$status,"host":"$host","user_agent":"$http_user_agent",'
    '"referer":"$http_referer","accept_language":"$http_accept_language"}')
PEER_MAX_MESSAGE = "64k"          # rsyslog's maxMessageSize (its default: 8k)
PEER_BATCH = 1000                 # queue.dequeueBatchSize: documents per _bulk at most
PEER_QUEUE_SIZE = 100000          # queue.size: messages held in memory
# rsyslogd's whole configuration (runner.Rsyslogd fills in the fields).
PEER_RSYSLOG_CONF = """\
# The benchmark's own rsyslogd: no system inputs (imuxsock, imklog), its own
# work directory; one file tailed, shipped to the stand-in.
global(workDirectory="{work}" maxMessageSize="{max_message}")
module(load="imfile" mode="inotify")
module(load="omelasticsearch")
template(name="document" type="list") {{ property(name="msg") }}
input(type="imfile" file="{log}" tag="pixel" ruleset="ship" freshStartTail="off")
ruleset(name="ship") {{
    action(type="omelasticsearch" name="ship"
           server="127.0.0.1" serverport="{port}" searchIndex="events" searchType=""
           template="document" bulkmode="on" errorFile="{errors}"
           queue.type="LinkedList" queue.filename="ship" queue.size="{queue_size}"
           queue.dequeueBatchSize="{batch}" queue.saveOnShutdown="on"
           action.resumeRetryCount="-1")
}}
# rsyslogd's own messages (the default ruleset): to a file of the run.
*.* action(type="omfile" file="{messages}")
"""
# Part of the short run: the row takes its warm-up, its run and the time
# rsyslog needs to ship the rest.
PEER_QUICK = True

# n: the row's number in the report; tag: names its logs and work
# directory; server: nginx (its own configuration), lighttpd or apache (the
# shipped configurations), or peer (the pipeline an administrator would build
# instead of trackpixel: nginx's empty_gif with a JSON access log that
# rsyslog's imfile tails and omelasticsearch ships; runner.run_peer); program: the FastCGI program the server runs
# (bare_pixel: bench/bare_pixel, in trackpixel's place); path and size: the
# URL path of the request and the body size it must answer; quick: part of
# the default rows of the short run.
Row = collections.namedtuple("Row", "n title tag server program cluster path size quick")

ROWS = {r.n: r for r in [
    Row(1, "nginx empty_gif (43-byte GIF)", "1-nginx",
        "nginx", None, None, "/pixel", 43, True),
    Row(2, "lighttpd, static 60-byte file", "2-lighttpd-static",
        "lighttpd", "bare_pixel", None, "/pixel.bmp", 60, True),
    Row(3, "lighttpd + bare FastCGI pixel (bench/bare_pixel)", "3-lighttpd-bare",
        "lighttpd", "bare_pixel", None, "/pixel", 60, True),
    Row(4, "lighttpd + trackpixel, fast stand-in", "4-lighttpd-tp",
        "lighttpd", "trackpixel", "fast", "/pixel", 60, True),
    Row(5, "Apache mod_fcgid + trackpixel, fast stand-in", "5-apache-tp",
        "apache", "trackpixel", "fast", "/pixel", 60, True),
    Row(6, "lighttpd + trackpixel, stand-in takes %d ms" % SLOW_MS, "6-lighttpd-tp-slow",
        "lighttpd", "trackpixel", "slow", "/pixel", 60, True),
    Row(7, "lighttpd + trackpixel, stand-in stopped", "7-lighttpd-tp-down",
        "lighttpd", "trackpixel", "down", "/pixel", 60, True),
    Row(8, "Apache mod_fcgid + bare FastCGI pixel (for comparison with 5)", "8-apache-bare",
        "apache", "bare_pixel", None, "/pixel", 60, True),
    # Not in the short run: it needs runs longer than TRACKPIXEL_TIMEOUT_MS
    # (5 s), as wrk does not count requests still waiting when a run ends.
    Row(9, "lighttpd + trackpixel, stand-in accepts and never answers", "9-lighttpd-tp-hung",
        "lighttpd", "trackpixel", "hung", "/pixel", 60, False),
    Row(10, "nginx empty_gif + JSON access log, rsyslog imfile + omelasticsearch (_bulk), "
        "fast stand-in", "10-peer", "peer", None, "fast", "/pixel", 43, PEER_QUICK),
]}

# The order the rows run in: 8 right after 5 (both Apache), the peer right
# after row 4 (the two pipelines close in time on a shared machine).
ORDER = (1, 2, 3, 4, 10, 5, 8, 6, 7, 9)

# The ratios the report lists: (numerator row, denominator row, what).
RATIOS = [
    (4, 3, ROWS[4].title + " / bare FastCGI pixel"),
    (5, 3, ROWS[5].title + " / bare FastCGI pixel"),
    (5, 8, "trackpixel / bare FastCGI pixel, both under Apache mod_fcgid"),
    (3, 1, "bare FastCGI pixel / nginx empty_gif"),
    (10, 4, "the peer, nginx + rsyslog / lighttpd + trackpixel"),
]

# The phases of one hit, in callgrind's instructions: (name, [(sign, key)],
# what).  A key is a function (its inclusive cost) or "caller>callee" (the
# cost of those calls only).  Delivery covers both ways a document leaves:
# tp_es_create (the loop posts the hit itself) and tp_es_bulk with the
# journal read before it (the delivery thread's _bulk), each without its
# signing.
PHASES = [
    ("request intake", [(1, "FCGX_Accept_r")],
     "libfcgi reads the request and its CGI variables"),
    ("request-id", [(1, "tp_uuid_v4_pooled")], "RAND_bytes (one call per 32 hits) + formatting"),
    ("document", [(1, "tp_doc_build"), (1, "tp_doc_serialize"), (-1, "tp_agent_classify")],
     "CGI variables to JSON text"),
    ("agent", [(1, "tp_agent_classify")],
     "who is asking: the User-Agent against the agents list, the prefetch headers"),
    ("journal append", [(1, "tp_deliver_record")],
     "the framed _bulk entry + one write(), under the lock"),
    ("response", [(1, "tp_pixel_response"), (1, "FCGX_PutStr"), (1, "FCGX_Finish_r")],
     "headers + pixel, FastCGI records, finishing the request"),
    ("signing", [(1, "tp_sigv4_sign_cached")], "SigV4 with the cached signing key"),
    ("delivery", [(1, "tp_es_create"), (1, "tp_es_bulk"), (1, "tp_journal_pending"),
                  (-1, "tp_sigv4_sign_cached")],
     "libcurl's request and answer (and the deliverer's journal read and _bulk answer)"),
    ("journal mark", [(1, "tp_journal_mark")],
     "after delivery: the .done offset, truncating a delivered journal"),
]
# A phase's terms used instead when the first one's function has a cost
# (none today: every phase's function is a symbol of its own).
PHASE_INSTEAD = {}
OTHER_PHASE = ("other", "total - the rows above",
               "the accept loop, tp_doc_free, the deliverer thread's loop, locks, ...")

# The figures a change to the pixel's path is judged by, named in the
# report's "Figures to compare" list and written by --figures.
KEY_PHASES = ("journal append", "delivery")

# The targets: label (a format string: {threshold} and the fields the
# metric gives), metric (report.METRICS) and its rows, the comparison, the
# threshold and its unit.  informational: listed, not a goal.
Target = collections.namedtuple("Target", "label metric rows op threshold unit informational")

TARGETS = [
    Target("4/3 >= {threshold:.2f}", "ratio_median", (4, 3), ">=", 0.90, "", False),
    Target("4: a trackpixel process's CPU per hit at most {threshold:g} us above 3's "
           "(the bare pixel's, {ref})", "cpu_over", (4, 3), "<=", 8.0, "us", False),
    Target("6: p99 within {threshold:g} ms of 4's p99 ({ref})", "p99_over", (6, 4),
           "<=", 2.0, "ms", False),
    Target("7: p99 within {threshold:g} ms of 4's p99 ({ref})", "p99_over", (7, 4),
           "<=", 2.0, "ms", False),
    Target("9 (informational): p99 within {threshold:g} ms of 4's", "p99_over", (9, 4),
           "<=", 2.0, "ms", True),
    Target("7: throughput within {within:g} % of 4's (at least {floor:.0f}/s)", "rps_share",
           (7, 4), ">=", 0.9, "share", False),
    Target("one worker's RSS <= {threshold:g} MiB", "rss_max", (), "<=", 8, "MiB", False),
    Target("RSS flat from {first} to {last} hits (grows by at most {threshold:g} KiB)",
           "rss_growth", (), "<=", 256, "KiB", False),
    Target("(informational) RSS flat from one delivered {hits}-hit backlog to the next",
           "backlog_growth", (), "<=", 256, "KiB", True),
]
