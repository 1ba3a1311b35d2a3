"""fcgi_client - a small FastCGI client (the responder role) for the tests.

cgi-fcgi starts one process per request; this client keeps one connection
open (FCGI_KEEP_CONN) and sends request after request over it, which is what
a web server does and hundreds of times faster, for tests that need many hits
(tests/test_memory.py).  It can also send a body slowly, in parts, or never
finish it, which cgi-fcgi cannot.

    with FcgiClient(port) as fc:
        status, headers, body = fc.request({"REQUEST_METHOD": "GET", ...})

Names and values of params may be str (UTF-8) or bytes (sent as they are).
Only loopback addresses are used by the tests.
"""
import os
import socket
import sys
import struct
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tplib  # noqa: E402

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
RESPONDER = 1
KEEP_CONN = 1
MAX_CONTENT = 65535


def _b(x):
    return x if isinstance(x, bytes) else str(x).encode("utf-8")


def _length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    """FastCGI name-value pairs of params (a dict or a list of pairs)."""
    items = params.items() if hasattr(params, "items") else params
    out = bytearray()
    for name, value in items:
        name, value = _b(name), _b(value)
        out += _length(len(name)) + _length(len(value)) + name + value
    return bytes(out)


def record(rtype, request_id, content=b""):
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBB", VERSION, rtype, request_id, len(content), pad, 0) + content + b"\0" * pad


def stream(rtype, request_id, data):
    """data as records of at most 65535 bytes, then the empty record that ends
    the stream."""
    out = bytearray()
    for i in range(0, len(data), MAX_CONTENT):
        out += record(rtype, request_id, data[i:i + MAX_CONTENT])
    out += record(rtype, request_id)
    return bytes(out)


# One parser of CGI responses for all the tests: tplib's.
parse_response = tplib.parse_cgi_response


class FcgiClient:
    """One connection to a FastCGI responder; requests go one after another."""

    def __init__(self, port, host="127.0.0.1", keep_conn=True, timeout=30.0):
        self.addr = (host, port)
        self.keep_conn = keep_conn
        self.timeout = timeout
        self.sock = None
        self.request_id = 0
        self.buf = b""

    def connect(self):
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("the FastCGI server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def begin(self, params, body=b"", finish_body=True):
        """Send the request up to its body (all of it unless finish_body is
        False: then the body stream is left open, see send_body())."""
        if self.sock is None:
            self.connect()
        self.request_id = self.request_id % 65535 + 1
        rid = self.request_id
        flags = KEEP_CONN if self.keep_conn else 0
        out = record(BEGIN_REQUEST, rid, struct.pack(">HB5x", RESPONDER, flags))
        out += stream(PARAMS, rid, encode_params(params))
        if finish_body:
            out += stream(STDIN, rid, body)
        elif body:
            out += record(STDIN, rid, body)
        self.sock.sendall(out)

    def send_body(self, data, end=False):
        """More of an open body; end=True closes the body stream."""
        out = record(STDIN, self.request_id, data) if data else b""
        if end:
            out += record(STDIN, self.request_id)
        self.sock.sendall(out)

    def response(self):
        """Read up to END_REQUEST: (status, headers, body, stderr bytes,
        app status)."""
        stdout, stderr = bytearray(), bytearray()
        while True:
            version, rtype, rid, clen, pad, _ = struct.unpack(">BBHHBB", self._read_exact(8))
            content = self._read_exact(clen + pad)[:clen]
            if rid != self.request_id:
                continue
            if rtype == STDOUT:
                stdout += content
            elif rtype == STDERR:
                stderr += content
            elif rtype == END_REQUEST:
                app_status = struct.unpack(">I", content[:4])[0]
                if not self.keep_conn:
                    self.close()
                status, headers, body = parse_response(bytes(stdout))
                return status, headers, body, bytes(stderr), app_status

    def request(self, params, body=b""):
        """One whole request: (status, headers, body)."""
        if body and not any(_b(k) == b"CONTENT_LENGTH" for k in
                            (params.keys() if hasattr(params, "keys") else (k for k, _ in params))):
            params = dict(params, CONTENT_LENGTH=str(len(body)))
        self.begin(params, body)
        return self.response()[:3]


def request(port, params, body=b"", timeout=30.0):
    """One request on a fresh connection (closed afterwards)."""
    with FcgiClient(port, keep_conn=False, timeout=timeout) as fc:
        return fc.request(params, body)


def slow_body_request(port, params, parts, end=True, timeout=30.0):
    """A request whose body comes in parts: [(delay_seconds, bytes), ...];
    end=False never closes the body stream.  Returns (status, headers, body,
    seconds until the response was complete)."""
    with FcgiClient(port, keep_conn=False, timeout=timeout) as fc:
        t0 = time.monotonic()
        fc.begin(params, finish_body=False)
        for delay, data in parts:
            time.sleep(delay)
            try:
                fc.send_body(data)
            except OSError:
                break               # the worker answered and closed early
        if end:
            try:
                fc.send_body(b"", end=True)
            except OSError:
                pass
        status, headers, body = fc.response()[:3]
        return status, headers, body, time.monotonic() - t0
