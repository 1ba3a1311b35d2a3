-- wrk script for bench/bench.py: at the end of a run, one line of JSON with
-- the numbers the report uses (latencies in microseconds, from wrk's own
-- histogram: the same figures `wrk --latency` prints).  No request() or
-- response() function, so wrk's fast path is kept.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,' ..
    '"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
