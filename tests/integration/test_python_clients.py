#!/usr/bin/python3
"""Integration tests: a real wshubd, driven by python3-websockets and by a raw socket client.

    /usr/bin/python3 test_python_clients.py --wshubd BUILD/core/wshubd \
        --plugin-dir BUILD/plugins --data tests/integration/data [-k SUBSTRING]

Each test starts its own server (harness.Server, free loopback ports) and stops it in a finally.
Two independent clients look at the server: websockets (a complete, widely used RFC 6455 and
RFC 7692 implementation) and a minimal raw client written here, for what a well-behaved library
will not do (never read, never answer pings, send malformed handshakes).

Output: `ok NAME` or `FAIL NAME: why` per test, then exactly `N passed, M failed`; exit 1 on any
failure. Waits are bounded polls or timeouts; nothing asserts on elapsed time.
"""

import argparse
import asyncio
import base64
import http.client
import json
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (_short, base_config, check, echo_config, eq, metric,  # noqa: E402
                     run_tests, run_wshubd)

try:
    import websockets
    import websockets.exceptions as wsx
except ImportError:  # pragma: no cover - a clear message beats a traceback in the test log
    print("FAIL setup: python3-websockets is missing (run with /usr/bin/python3)")
    print("0 passed, 1 failed")
    sys.exit(1)

TEST_TIMEOUT = 90.0   # upper bound for one test
IO_TIMEOUT = 10.0     # upper bound for one receive / handshake
SHUTDOWN_REASON = "server shutting down; reconnect"

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def poll(fn, what, timeout=IO_TIMEOUT, interval=0.05):
    """Calls fn until it returns a true value; fails with `what` at the bound."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


async def apoll(fn, what, timeout=IO_TIMEOUT, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


# ------------------------------------------------------------------------------------------
# websockets client helpers
# ------------------------------------------------------------------------------------------

def connect(url, **kw):
    """websockets.connect with test defaults: no client pings (they would add traffic the tests
    do not expect), no size limit on what we receive, bounded handshake and close."""
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", IO_TIMEOUT)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(url, **kw)


async def recv(ws, timeout=IO_TIMEOUT):
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_json(ws, timeout=IO_TIMEOUT):
    msg = await recv(ws, timeout)
    check(isinstance(msg, str), "expected a text message, got %d bytes of binary" % len(msg))
    return json.loads(msg)


async def open_json(url, **kw):
    """Connects to the JSON path and returns (ws, welcome)."""
    ws = await connect(url, **kw)
    welcome = await recv_json(ws)
    eq(welcome.get("type"), "welcome", "first message type")
    return ws, welcome


class closing:
    """`async with closing(ws)`: closes an already open websockets connection on exit."""

    def __init__(self, ws):
        self.ws = ws

    async def __aenter__(self):
        return self.ws

    async def __aexit__(self, *exc):
        await self.ws.close()
        return False


async def expect_status(url, status, **kw):
    """The upgrade must be refused with HTTP `status`."""
    try:
        ws = await connect(url, **kw)
    except wsx.InvalidStatusCode as e:
        eq(e.status_code, status, "HTTP status of refused upgrade to %s" % url)
        return
    await ws.close()
    raise AssertionError("upgrade to %s succeeded, want HTTP %d" % (url, status))


async def expect_closed(ws, code, reason=None, timeout=IO_TIMEOUT):
    """Reads until the server closes; checks the close code (and reason)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "connection not closed within %.0fs" % timeout)
        try:
            await asyncio.wait_for(ws.recv(), left)
        except wsx.ConnectionClosed:
            break
        except asyncio.TimeoutError:
            raise AssertionError("connection not closed within %.0fs" % timeout)
    eq(ws.close_code, code, "close code")
    if reason is not None:
        eq(ws.close_reason, reason, "close reason")


# ------------------------------------------------------------------------------------------
# Raw client: handshake bytes and frames written by hand
# ------------------------------------------------------------------------------------------

def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(host, port, path="/ws", extra=(), version="13", key=None):
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % (key or ws_key()),
             "Sec-WebSocket-Version: %s" % version]
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def encode_frame(opcode, payload=b"", fin=True, mask=True):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    # XOR with the repeated key; int.from_bytes keeps this fast for multi-megabyte payloads.
    full = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big") \
        if n else b""
    return head + key + masked


class RawClient:
    """A WebSocket client over asyncio streams that does only what the test tells it."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.status = None
        self.head = b""

    @classmethod
    async def open(cls, host, port, request, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the advertised window is small from the first segment.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)),
                                   IO_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        c = cls(reader, writer)
        writer.write(request)
        await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
        c.head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        status_line = c.head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split()
        check(len(parts) >= 2 and parts[0].startswith("HTTP/1."), "bad status line %r"
              % status_line)
        c.status = int(parts[1])
        return c

    def header(self, name):
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    async def send(self, opcode, payload=b"", fin=True, timeout=IO_TIMEOUT):
        self.writer.write(encode_frame(opcode, payload, fin))
        await asyncio.wait_for(self.writer.drain(), timeout)

    async def read_frame(self, timeout=IO_TIMEOUT):
        """Returns (fin, opcode, payload), or None at EOF."""
        try:
            h = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        except asyncio.IncompleteReadError:
            return None
        fin = bool(h[0] & 0x80)
        opcode = h[0] & 0x0F
        check(not (h[1] & 0x80), "server frame is masked")
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await asyncio.wait_for(self.reader.readexactly(2),
                                                            timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", await asyncio.wait_for(self.reader.readexactly(8),
                                                            timeout))[0]
        payload = await asyncio.wait_for(self.reader.readexactly(n), timeout) if n else b""
        return fin, opcode, payload

    def close(self):
        try:
            self.writer.close()
        except Exception:
            pass


def close_payload(payload):
    """(code, reason) of a close frame payload."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


async def raw_http(host, port, request, timeout=IO_TIMEOUT):
    """Sends bytes, returns the response head (status line and headers) as text."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        return head.decode("latin-1")
    finally:
        writer.close()


def status_of(head):
    return int(head.split("\r\n", 1)[0].split()[1])


# ------------------------------------------------------------------------------------------
# JSON protocol on /ws
# ------------------------------------------------------------------------------------------

@test
async def welcome_ping_pong(ctx):
    with ctx.server(base_config(heartbeat_interval="5s", connection_timeout="30s")) as srv:
        ws, w = await open_json(srv.url())
        async with closing(ws):
            check(isinstance(w.get("connection_id"), int) and w["connection_id"] > 0,
                  "connection_id %r" % w.get("connection_id"))
            check(isinstance(w.get("server_time"), int) and w["server_time"] > 1.5e12,
                  "server_time %r is not epoch milliseconds" % w.get("server_time"))
            eq(w.get("heartbeat"), 5000, "welcome heartbeat (ms)")
            eq(w.get("protocol"), "wshub.v1", "welcome protocol")
            eq(w.get("tenant_id"), "public", "welcome tenant_id")
            eq(w.get("user_id"), "", "welcome user_id")
            for pid in (1, "abc", 12.5, "ü-\"quoted\""):
                await ws.send(json.dumps({"type": "ping", "id": pid}))
                p = await recv_json(ws)
                eq(p.get("type"), "pong", "reply type")
                eq(p.get("id"), pid, "pong id")
                check(isinstance(p.get("server_time"), int), "pong server_time %r"
                      % p.get("server_time"))
            await ws.send('{"type":"ping"}')
            p = await recv_json(ws)
            eq(p.get("type"), "pong", "reply type")
            check("id" not in p, "pong without request id carries id %r" % p.get("id"))
            # A second connection gets a different id.
            ws2, w2 = await open_json(srv.url())
            await ws2.close()
            check(w2["connection_id"] != w["connection_id"], "connection ids repeat")


@test
async def json_error_codes(ctx):
    with ctx.server(base_config(max_message_size="64KiB")) as srv:
        ws, _ = await open_json(srv.url())
        async with closing(ws):
            cases = [
                ("{nope", None, "bad_json"),
                ("[1,2,3]", None, "bad_json"),
                ('{"type":"ping"} trailing', None, "bad_json"),
                ('{"id":7}', 7, "bad_json"),
                ('{"type":42,"id":"n"}', "n", "bad_json"),
                ('{"type":"no.such.type","id":"x1"}', "x1", "unknown_type"),
                ('{"type":"no_such","id":99}', 99, "unknown_type"),
                ('{"type":"ping","x":' + "[" * 200 + "]" * 200 + "}", None, "bad_json"),
                ('{"type":"ping","id":null}', None, "bad_json"),
            ]
            for text, want_id, code in cases:
                await ws.send(text)
                e = await recv_json(ws)
                eq(e.get("type"), "error", "reply type to %r" % text)
                eq(e.get("code"), code, "error code for %r" % text)
                eq(e.get("id"), want_id, "error id for %r" % text)
                check(isinstance(e.get("message"), str) and e["message"],
                      "error for %r has no message" % text)
            await ws.send(b"\x00\x01binary")
            e = await recv_json(ws)
            eq((e.get("type"), e.get("code")), ("error", "unsupported"), "binary on /ws")
            # Over max_message_size (64 KiB here) on the JSON path: an error, not a close.
            await ws.send('{"type":"ping","pad":"' + "p" * (70 * 1024) + '"}')
            e = await recv_json(ws)
            eq((e.get("type"), e.get("code")), ("error", "too_large"), "oversize JSON message")
            # Still open and working after every error.
            await ws.send('{"type":"ping","id":"after"}')
            p = await recv_json(ws)
            eq((p.get("type"), p.get("id")), ("pong", "after"), "ping after errors")
        m = srv.metrics()
        eq(metric(m, "wshub_errors_sent_total", {"code": "bad_json"}), 7.0,
           "errors_sent_total{bad_json}")
        eq(metric(m, "wshub_errors_sent_total", {"code": "unknown_type"}), 2.0,
           "errors_sent_total{unknown_type}")
        eq(metric(m, "wshub_errors_sent_total", {"code": "unsupported"}), 1.0,
           "errors_sent_total{unsupported}")
        eq(metric(m, "wshub_errors_sent_total", {"code": "too_large"}), 1.0,
           "errors_sent_total{too_large}")
        await apoll(lambda: srv.metrics()["wshub_connections_closed_total"] == 1.0,
                    "connections_closed_total == 1 (the test's one connection, at its end)")


# ------------------------------------------------------------------------------------------
# Handshake refusals
# ------------------------------------------------------------------------------------------

@test
async def handshake_unknown_path_404(ctx):
    with ctx.server(echo_config()) as srv:
        await expect_status(srv.url("/nope"), 404)
        await expect_status(srv.url("/echo/"), 404)
        # The known paths still work.
        ws, _ = await open_json(srv.url())
        await ws.close()
        eq(metric(srv.metrics(), "wshub_handshake_failures_total", {"reason": "no_path"}), 2.0,
           "handshake_failures_total{no_path}")


@test
async def handshake_raw_errors(ctx):
    with ctx.server(base_config(max_header_size="1KiB")) as srv:
        h, p = srv.ws_host, srv.ws_port
        before = srv.metrics()
        # 400: not HTTP at all, and HTTP without the WebSocket headers.
        head = await raw_http(h, p, b"HELLO THERE\r\n\r\n")
        eq(status_of(head), 400, "status for garbage request line")
        head = await raw_http(h, p, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        check(400 <= status_of(head) < 500, "plain GET answered %d" % status_of(head))
        # 426 with the version we speak.
        head = await raw_http(h, p, upgrade_request(h, p, version="8"))
        eq(status_of(head), 426, "status for Sec-WebSocket-Version: 8")
        check("sec-websocket-version: 13" in head.lower(), "426 without Sec-WebSocket-Version:"
              " 13:\n" + head)
        # 431: a request head above max_header_size (1 KiB here).
        big = upgrade_request(h, p, extra=["X-Filler: " + "a" * 4000])
        head = await raw_http(h, p, big)
        eq(status_of(head), 431, "status for a 4 KiB header with max_header_size 1KiB")
        # Header names are case-insensitive, tokens too, and Connection may list several.
        req = ("GET /ws?token=abc&x=1 HTTP/1.1\r\nhost: %s:%d\r\nUPGRADE: WebSocket\r\n"
               "connection: keep-alive, Upgrade\r\nsec-websocket-key: %s\r\n"
               "SEC-WEBSOCKET-VERSION: 13\r\nUser-Agent: t\r\n\r\n" % (h, p, ws_key()))
        c = await RawClient.open(h, p, req.encode())
        eq(c.status, 101, "upgrade with unusual header case, a query and Connection list")
        check(c.header("sec-websocket-accept"), "no Sec-WebSocket-Accept")
        c.close()
        # A correct raw request is accepted, so the refusals above were about the request.
        c = await RawClient.open(h, p, upgrade_request(h, p))
        eq(c.status, 101, "raw upgrade status")
        fr = await c.read_frame()
        check(fr is not None and fr[1] == 1 and b'"welcome"' in fr[2], "no welcome: %r"
              % (fr,))
        c.close()
        after = srv.metrics()
        failed = {k: after[k] - before.get(k, 0) for k in after
                  if k.startswith("wshub_handshake_failures_total")}
        eq(failed.get('wshub_handshake_failures_total{reason="header_too_large"}'), 1.0,
           "handshake_failures_total{header_too_large}")
        eq(sum(failed.values()), 4.0, "handshake failures counted (%r)" % failed)
        eq(after["wshub_connections_accepted_total"], 2.0, "accepted_total")


@test
async def max_connections_503(ctx):
    with ctx.server(base_config(max_connections=5)) as srv:
        clients = []
        try:
            for _ in range(5):
                ws, _w = await open_json(srv.url())
                clients.append(ws)
            await expect_status(srv.url(), 503)
            m = srv.metrics()
            eq(m["wshub_connections"], 5.0, "wshub_connections at the limit")
            eq(metric(m, "wshub_handshake_failures_total", {"reason": "max_connections"}), 1.0,
               "handshake_failures_total{max_connections}")
            # The 5 open ones still work.
            for i, ws in enumerate(clients):
                await ws.send(json.dumps({"type": "ping", "id": i}))
                eq((await recv_json(ws)).get("id"), i, "pong id at the limit")
            # A slot frees when one closes.
            await clients.pop().close()
            await apoll(lambda: srv.metrics()["wshub_connections"] == 4.0,
                        "wshub_connections back to 4")
            ws, _w = await open_json(srv.url())
            clients.append(ws)
            await expect_status(srv.url(), 503)
        finally:
            for ws in clients:
                await ws.close()


@test
async def cors_origins_403(ctx):
    cfg = base_config(cors_origins=["http://good.example", "https://app.example.com"])
    with ctx.server(cfg) as srv:
        ws, _ = await open_json(srv.url(), origin="http://good.example")
        await ws.close()
        ws, _ = await open_json(srv.url(), origin="https://app.example.com")
        await ws.close()
        await expect_status(srv.url(), 403, origin="http://evil.example")
        await expect_status(srv.url(), 403, origin="http://good.example.evil.example")
        await expect_status(srv.url(), 403, origin="https://good.example")
        # No Origin header: not a browser, the allow-list does not apply.
        ws, _ = await open_json(srv.url())
        await ws.close()
        m = srv.metrics()
        eq(metric(m, "wshub_handshake_failures_total", {"reason": "origin"}), 3.0,
           "handshake_failures_total{origin}")
        eq(m["wshub_connections_accepted_total"], 3.0, "accepted_total")


# ------------------------------------------------------------------------------------------
# Echo plugin
# ------------------------------------------------------------------------------------------

@test
async def echo_text_and_binary(ctx):
    with ctx.server(echo_config()) as srv:
        for compression in ("deflate", None):
            async with connect(srv.url("/echo"), compression=compression) as ws:
                msgs = ["hello", "", "ünïcødé ✓ 😀", "x" * 125, "y" * 126, "z" * 65536,
                        b"", b"\x00\xff\x10binary", bytes(range(256)) * 300]
                for msg in msgs:
                    await ws.send(msg)
                    got = await recv(ws)
                    eq(type(got), type(msg), "echo kind for %r" % _short(msg))
                    eq(got, msg, "echo payload (compression=%s)" % compression)
                # No JSON welcome on a raw path: nothing else is pending.
                await ws.send("last")
                eq(await recv(ws), "last", "echo after sequence")
        m = srv.metrics()
        eq(metric(m, "wshub_echo_messages_total", {"kind": "text"}), 14.0, "echoed text")
        eq(metric(m, "wshub_echo_messages_total", {"kind": "binary"}), 6.0, "echoed binary")


async def _fragments(parts):
    for p in parts:
        await asyncio.sleep(0)
        yield p


@test
async def echo_fragmented(ctx):
    with ctx.server(echo_config()) as srv:
        for compression in (None, "deflate"):
            async with connect(srv.url("/echo"), compression=compression) as ws:
                parts = ["first fragment, ", "second ✓ fragment, ", "third" * 1000]
                await ws.send(_fragments(parts))
                eq(await recv(ws), "".join(parts), "fragmented text echo")
                bparts = [os.urandom(10), os.urandom(70000), b"", os.urandom(3)]
                await ws.send(_fragments(bparts))
                eq(await recv(ws), b"".join(bparts), "fragmented binary echo")
        # Raw client: multi-byte characters split across fragments (valid UTF-8 as a whole
        # message, which is what is validated), with a ping between the fragments.
        raw = "é€😀".encode()
        h, p = srv.ws_host, srv.ws_port
        c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"))
        try:
            eq(c.status, 101, "raw upgrade status")
            await c.send(0x1, raw[:1], fin=False)
            await c.send(0x9, b"mid")            # control frame between fragments
            await c.send(0x0, raw[1:5], fin=False)
            await c.send(0x0, raw[5:], fin=True)
            fr = await c.read_frame()
            eq(fr, (True, 0xA, b"mid"), "pong to a ping between fragments")
            fr = await c.read_frame()
            eq(fr, (True, 0x1, raw), "reassembled text echo")
        finally:
            c.close()


@test
async def echo_one_mebibyte(ctx):
    with ctx.server(echo_config()) as srv:  # max_message_size default: 1MiB
        rnd = random.Random(1)
        text = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(1 << 20))
        data = os.urandom(1 << 20)
        async with connect(srv.url("/echo"), compression=None) as ws:
            await ws.send(text)
            eq(await recv(ws, 30), text, "1 MiB text echo")
            await ws.send(data)
            eq(await recv(ws, 30), data, "1 MiB binary echo")
            await ws.send(_fragments([data[:1000], data[1000:]]))
            eq(await recv(ws, 30), data, "1 MiB fragmented binary echo")
        # One byte over max_message_size: closed with 1009.
        async with connect(srv.url("/echo"), compression=None) as ws:
            await ws.send(data + b"!")
            await expect_closed(ws, 1009)
        eq(metric(srv.metrics(), "wshub_protocol_errors_total", {"code": "1009"}), 1.0,
           "protocol_errors_total{1009}")


@test
async def permessage_deflate(ctx):
    with ctx.server(echo_config()) as srv:
        text = ("All work and no play makes Jack a dull boy. " * 20000)[:800000]
        async with connect(srv.url("/echo")) as ws:
            names = [e.name for e in ws.extensions]
            eq(names, ["permessage-deflate"], "negotiated extensions")
            m0 = srv.metrics()
            await ws.send(text)
            eq(await recv(ws, 30), text, "compressed large text echo")
            m1 = srv.metrics()
            sent = m1["wshub_bytes_out_total"] - m0["wshub_bytes_out_total"]
            got = m1["wshub_bytes_in_total"] - m0["wshub_bytes_in_total"]
            # Both directions really were compressed, not just negotiated.
            check(0 < sent < len(text) / 10, "server wrote %d bytes for %d bytes of repetitive"
                  " text" % (sent, len(text)))
            check(0 < got < len(text) / 10, "server read %d bytes for %d bytes of repetitive"
                  " text" % (got, len(text)))
            rnd = os.urandom(300000)
            await ws.send(rnd)
            eq(await recv(ws, 30), rnd, "incompressible binary echo")
            for i in range(50):  # small messages, below deflate_min_size, interleaved
                msg = "small %d " % i + "q" * (i * 13)
                await ws.send(msg)
                eq(await recv(ws), msg, "small message echo with deflate")
        # Server-side switch off: the offer is declined, messages still echo.
        cfg = echo_config(permessage_deflate=False)
    with ctx.server(cfg) as srv:
        async with connect(srv.url("/echo")) as ws:
            eq(list(ws.extensions), [], "extensions with permessage_deflate: false")
            await ws.send(text)
            eq(await recv(ws, 30), text, "large text echo without deflate")


def raw_frame(b0, payload=b"", mask=True, length=None):
    """A frame with the first byte given as is (FIN, RSV bits, opcode) and an optional lying
    length field; for frames a correct encoder refuses to produce."""
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = b"\x00\x00\x00\x00"  # a zero key: the payload goes out as is
    return head + key + payload


PROTOCOL_CASES = [
    # (name, bytes after the handshake, expected close code)
    ("unmasked frame", encode_frame(0x1, b"hi", mask=False), 1002),
    ("rsv1 without deflate", raw_frame(0xC1, b"hi"), 1002),
    ("rsv2", raw_frame(0xA1, b"hi"), 1002),
    ("reserved data opcode 3", raw_frame(0x83, b"x"), 1002),
    ("reserved control opcode 11", raw_frame(0x8B, b""), 1002),
    ("ping with 126 bytes", raw_frame(0x89, b"p" * 126), 1002),
    ("fragmented ping", raw_frame(0x09, b"p"), 1002),
    ("continuation first", raw_frame(0x80, b"x"), 1002),
    ("new text inside a fragmented message", raw_frame(0x01, b"a") + raw_frame(0x81, b"b"),
     1002),
    ("invalid UTF-8 text", raw_frame(0x81, b"ok\xff"), 1007),
    ("UTF-16 surrogate in text", raw_frame(0x81, b"\xed\xa0\x80"), 1007),
    ("overlong UTF-8 in text", raw_frame(0x81, b"\xc0\xaf"), 1007),
    ("invalid UTF-8 split over fragments", raw_frame(0x01, b"\xe2\x82") +
     raw_frame(0x80, b"\x28"), 1007),
    ("close with 1-byte payload", raw_frame(0x88, b"\x03"), 1002),
    ("close code 999", raw_frame(0x88, struct.pack("!H", 999)), 1002),
    ("close code 1005", raw_frame(0x88, struct.pack("!H", 1005)), 1002),
    ("close code 1006", raw_frame(0x88, struct.pack("!H", 1006)), 1002),
    ("close code 5000", raw_frame(0x88, struct.pack("!H", 5000)), 1002),
    ("close reason invalid UTF-8", raw_frame(0x88, struct.pack("!H", 1000) + b"\xff"), 1007),
    ("64-bit length with the top bit set", struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + b"\0" * 4,
     1002),
    ("message over max_message_size", raw_frame(0x82, length=(1 << 20) + 1), 1009),
]


@test
async def protocol_violations(ctx):
    """Each violation closes the connection with the RFC 6455 code and is counted; the server
    keeps serving others."""
    with ctx.server(echo_config()) as srv:
        h, p = srv.ws_host, srv.ws_port
        want = {}
        for name, data, code in PROTOCOL_CASES:
            c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"))
            try:
                eq(c.status, 101, "upgrade for case %r" % name)
                c.writer.write(data)
                await c.writer.drain()
                got = None
                for _ in range(10):  # an echo may come first, for cases that start with data
                    fr = await c.read_frame()
                    if fr is None:
                        break
                    if fr[1] == 0x8:
                        got = close_payload(fr[2])[0]
                        break
                eq(got, code, "close code for %r" % name)
                want[str(code)] = want.get(str(code), 0) + 1
            finally:
                c.close()
        m = srv.metrics()
        for code, n in want.items():
            eq(metric(m, "wshub_protocol_errors_total", {"code": code}), float(n),
               "protocol_errors_total{%s}" % code)
        async with connect(srv.url("/echo")) as ws:
            await ws.send("alive")
            eq(await recv(ws), "alive", "echo after the violations")
        eq(srv.admin_get("/health")[0], 200, "/health after the violations")


@test
async def pipelined_and_split_frames(ctx):
    """Frames in the same segment as the handshake, and frames split into single bytes."""
    with ctx.server(echo_config()) as srv:
        h, p = srv.ws_host, srv.ws_port
        req = upgrade_request(h, p) + encode_frame(0x1, '{"type":"ping","id":"early"}') + \
            encode_frame(0x9, b"hb")
        c = await RawClient.open(h, p, req)
        try:
            eq(c.status, 101, "upgrade with pipelined frames")
            frames = [await c.read_frame() for _ in range(3)]
            kinds = sorted(f[1] for f in frames)
            eq(kinds, [0x1, 0x1, 0xA], "welcome, pong message and pong frame")
            texts = [json.loads(f[2]) for f in frames if f[1] == 0x1]
            eq(texts[0].get("type"), "welcome", "first text message")
            eq((texts[1].get("type"), texts[1].get("id")), ("pong", "early"), "early ping's pong")
            eq([f[2] for f in frames if f[1] == 0xA], [b"hb"], "pong frame payload")
        finally:
            c.close()
        c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"))
        try:
            msg = "split into single bytes ✓ " * 8
            data = encode_frame(0x1, msg[:50], fin=False) + encode_frame(0x0, msg[50:])
            for i in range(len(data)):
                c.writer.write(data[i:i + 1])
                await c.writer.drain()
                if i % 16 == 0:
                    await asyncio.sleep(0.001)  # let the segments go out one by one
            fr = await c.read_frame()
            eq(fr, (True, 0x1, msg.encode()), "echo of a message sent byte by byte")
        finally:
            c.close()


@test
async def client_close_codes(ctx):
    """The server answers a client's close with the same code, and counts it by code."""
    with ctx.server(echo_config()) as srv:
        h, p = srv.ws_host, srv.ws_port
        for code, reason in ((1000, ""), (4000, "app says bye"), (3999, "x" * 123)):
            c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"))
            try:
                await c.send(0x8, struct.pack("!H", code) + reason.encode())
                fr = await c.read_frame()
                check(fr is not None and fr[1] == 0x8, "no close frame back: %r" % (fr,))
                eq(close_payload(fr[2])[0], code, "echoed close code")
                eq(await c.read_frame(), None, "EOF after the close handshake")
            finally:
                c.close()
        # Abrupt TCP close (no close frame): counted as 1006, the connection is gone.
        c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"))
        await c.send(0x1, b"bye")
        eq(await c.read_frame(), (True, 0x1, b"bye"), "echo before the abrupt close")
        c.close()
        await apoll(lambda: metric(srv.metrics(), "wshub_closes_total", {"code": "1006"}) == 1.0,
                    "closes_total{1006} == 1")
        # An empty close is answered with an empty close.
        c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"))
        try:
            await c.send(0x8, b"")
            fr = await c.read_frame()
            eq(fr, (True, 0x8, b""), "answer to an empty close")
        finally:
            c.close()
        await apoll(lambda: srv.metrics()["wshub_connections"] == 0.0, "connections == 0")
        m = srv.metrics()
        for code in ("1000", "4000", "3999"):
            eq(metric(m, "wshub_closes_total", {"code": code}), 1.0, "closes_total{%s}" % code)
        eq(m["wshub_connections_closed_total"], 5.0, "connections_closed_total")


PMD_OFFERS = [
    # ClientPerMessageDeflateFactory arguments: the parameters of RFC 7692 section 7.1.
    dict(),
    dict(client_max_window_bits=None),
    dict(server_no_context_takeover=True),
    dict(client_no_context_takeover=True),
    dict(server_no_context_takeover=True, client_no_context_takeover=True),
    dict(server_max_window_bits=9),
    dict(server_max_window_bits=10, client_max_window_bits=9),
    dict(server_max_window_bits=15, client_max_window_bits=15),
    dict(server_max_window_bits=8),
]


@test
async def permessage_deflate_parameters(ctx):
    """Every RFC 7692 parameter the client can offer: either the server agrees to an offer and
    both directions then work with the agreed window and context rules, or it declines it; it
    never agrees to something it then violates (the client would fail to inflate)."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    with ctx.server(echo_config(deflate_min_size=0)) as srv:
        rnd = random.Random(5)
        words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
        texts = [" ".join(rnd.choice(words) for _ in range(n)) for n in (1, 50, 20000, 70000)]
        # Repetition at a distance of ~2 KiB: a 512-byte window (9 bits) cannot reference it.
        far = "".join(chr(33 + rnd.randrange(90)) for _ in range(2000))
        texts.append((far + "|") * 40)
        for offer in PMD_OFFERS:
            fac = ClientPerMessageDeflateFactory(**offer)
            async with connect(srv.url("/echo"), extensions=[fac], compression=None) as ws:
                names = [e.name for e in ws.extensions]
                check(names in ([], ["permessage-deflate"]), "extensions %r" % names)
                for t in texts * 2:  # twice: the second round reuses (or resets) the context
                    await ws.send(t)
                    eq(await recv(ws, 30), t, "echo with offer %r (agreed: %r)"
                       % (offer, ws.extensions))
                b = os.urandom(100000)
                await ws.send(b)
                eq(await recv(ws, 30), b, "binary echo with offer %r" % offer)
            if offer == {}:
                eq(names, ["permessage-deflate"], "the default offer is accepted")


@test
async def subprotocol_selection(ctx):
    with ctx.server(base_config()) as srv:
        async with connect(srv.url(), subprotocols=["other", "wshub.v1"]) as ws:
            eq(ws.subprotocol, "wshub.v1", "chosen subprotocol")
            eq((await recv_json(ws)).get("type"), "welcome", "welcome with wshub.v1")
        async with connect(srv.url()) as ws:
            eq(ws.subprotocol, None, "subprotocol when none offered")
            eq((await recv_json(ws)).get("type"), "welcome", "welcome without a subprotocol")
        # Only unknown protocols offered: no Sec-WebSocket-Protocol in the answer, which a
        # client that insists on one then refuses (websockets raises InvalidHandshake).
        try:
            ws = await connect(srv.url(), subprotocols=["chat.v9"])
        except wsx.InvalidHandshake:
            pass
        else:
            eq(ws.subprotocol, None, "subprotocol for an unknown offer")
            await ws.close()


@test
async def connection_limits_per_ip_tenant_env(ctx):
    """max_connections_per_ip, a tenant's max_connections and an environment override, each
    refusing with 503 at its limit and admitting again when a connection leaves."""
    async def fill_and_refuse(srv, n, reason):
        clients = [(await open_json(srv.url()))[0] for _ in range(n)]
        try:
            await expect_status(srv.url(), 503)
            eq(metric(srv.metrics(), "wshub_handshake_failures_total", {"reason": reason}),
               1.0, "handshake_failures_total{%s}" % reason)
            await clients.pop().close()
            await apoll(lambda: srv.metrics()["wshub_connections"] == float(n - 1),
                        "a slot to free")
            clients.append((await open_json(srv.url()))[0])
            await expect_status(srv.url(), 503)
        finally:
            for ws in clients:
                await ws.close()
        await apoll(lambda: srv.metrics()["wshub_connections"] == 0.0, "all closed")

    with ctx.server(base_config(max_connections_per_ip=3)) as srv:
        await fill_and_refuse(srv, 3, "ip_limit")
        # The per-IP count went back to zero: the full quota is available again.
        clients = [(await open_json(srv.url()))[0] for _ in range(3)]
        for ws in clients:
            await ws.close()
    cfg = base_config()
    cfg["tenants"] = {"public": {"max_connections": 2}}
    with ctx.server(cfg) as srv:
        await fill_and_refuse(srv, 2, "tenant_limit")
    with ctx.server(base_config(), env={"WSHUB_SERVER_MAX_CONNECTIONS": "2"}) as srv:
        await fill_and_refuse(srv, 2, "max_connections")


@test
def env_override_unknown_key(ctx):
    r = run_wshubd(ctx.wshubd, ["--check-config", _data(ctx, "valid.yaml")],
                   env={"WSHUB_PLUGIN_DIR": ctx.plugin_dir, "WSHUB_SERVER_MAX_CONECTIONS": "5"})
    eq(r.returncode, 2, "exit code with WSHUB_SERVER_MAX_CONECTIONS set")
    check("MAX_CONECTIONS" in r.stderr.upper(), "stderr does not name the variable: %r"
          % r.stderr)
    r = run_wshubd(ctx.wshubd, ["--check-config", _data(ctx, "valid.yaml")],
                   env={"WSHUB_PLUGIN_DIR": ctx.plugin_dir, "WSHUB_SERVER_MAX_CONNECTIONS": "x"})
    eq(r.returncode, 2, "exit code with WSHUB_SERVER_MAX_CONNECTIONS=x")


@test
async def oversize_messages(ctx):
    """max_message_size 64KiB. JSON path: an oversize message (plain, fragmented, or inflating
    past the limit) is answered too_large and the connection stays; past 16x the limit it is
    closed 1009. Raw path: closed 1009, also when only the inflated size is too big."""
    with ctx.server(echo_config(max_message_size="64KiB")) as srv:
        big_json = '{"type":"ping","pad":"' + "p" * (200 * 1024) + '"}'
        for compression in (None, "deflate"):
            async with connect(srv.url(), compression=compression) as ws:
                eq((await recv_json(ws)).get("type"), "welcome", "welcome")
                await ws.send(big_json)
                e = await recv_json(ws)
                eq((e.get("type"), e.get("code")), ("error", "too_large"),
                   "oversize JSON (compression=%s)" % compression)
                await ws.send(_fragments([big_json[:50000], big_json[50000:]]))
                e = await recv_json(ws)
                eq(e.get("code"), "too_large", "oversize fragmented JSON")
                await ws.send('{"type":"ping","id":1}')
                eq((await recv_json(ws)).get("id"), 1, "pong after oversize messages")
        async with connect(srv.url(), compression=None) as ws:
            await recv_json(ws)
            await ws.send("x" * (16 * 64 * 1024 + 1))
            await expect_closed(ws, 1009)
        async with connect(srv.url("/echo"), compression=None) as ws:
            await ws.send("x" * (64 * 1024 + 1))
            await expect_closed(ws, 1009)
        async with connect(srv.url("/echo")) as ws:
            check(ws.extensions, "deflate negotiated")
            await ws.send("y" * (64 * 1024))  # exactly the limit: fine
            eq(await recv(ws), "y" * (64 * 1024), "echo at the limit, compressed")
            await ws.send("y" * (200 * 1024))  # a few KiB on the wire, 200 KiB inflated
            await expect_closed(ws, 1009)
        eq(srv.admin_get("/health")[0], 200, "/health")


# ------------------------------------------------------------------------------------------
# Slow consumer
# ------------------------------------------------------------------------------------------

@test
async def slow_consumer(ctx):
    cfg = echo_config(send_queue_max_bytes="256KiB")
    with ctx.server(cfg) as srv:
        h, p = srv.ws_host, srv.ws_port
        good = await connect(srv.url("/echo"))
        slow = await RawClient.open(h, p, upgrade_request(h, p, "/echo"), rcvbuf=4096)
        try:
            eq(slow.status, 101, "slow client's upgrade")
            chunk = encode_frame(0x2, os.urandom(64 * 1024))
            closes = lambda: metric(srv.metrics(), "wshub_slow_consumer_closes_total")  # noqa
            eq(closes(), 0.0, "slow_consumer_closes_total before")
            sent = 0
            for i in range(2000):  # at most 125 MiB; the close comes after a few MiB
                try:
                    slow.writer.write(chunk)
                    await asyncio.wait_for(slow.writer.drain(), 2)
                    sent += 1
                except (asyncio.TimeoutError, ConnectionError, OSError):
                    break  # the server stopped reading us: it has closed the connection
                if i % 8 == 7:
                    # The other client is served meanwhile.
                    await good.send("still there %d" % i)
                    eq(await recv(good), "still there %d" % i, "good client's echo")
                    if closes() >= 1:
                        break
            await apoll(lambda: closes() >= 1, "wshub_slow_consumer_closes_total to increase")
            eq(closes(), 1.0, "slow_consumer_closes_total")
            check(sent >= 4, "only %d messages sent before the close" % sent)
            # The server is healthy, the good client still works, the slow one is gone.
            eq(srv.admin_get("/health")[0], 200, "/health after slow consumer")
            eq(srv.admin_get("/ready")[0], 200, "/ready after slow consumer")
            await good.send("after")
            eq(await recv(good), "after", "good client after the slow consumer was closed")
            await apoll(lambda: srv.metrics()["wshub_connections"] == 1.0,
                        "wshub_connections == 1")
            eq(metric(srv.metrics(), "wshub_closes_total", {"code": "1008"}), 1.0,
               "closes_total{1008}")
        finally:
            slow.close()
            await good.close()


# ------------------------------------------------------------------------------------------
# Shutdown
# ------------------------------------------------------------------------------------------

@test
async def sigterm_drain(ctx):
    import signal
    cfg = base_config(shutdown_timeout="8s")
    srv = ctx.server(cfg)
    with srv:
        h, p = srv.ws_host, srv.ws_port
        clients = [(await open_json(srv.url()))[0] for _ in range(3)]
        # A raw client that will not answer the close frame keeps the server draining for a
        # while (the lingering close), so /ready can be observed during the drain.
        lazy = await RawClient.open(h, p, upgrade_request(h, p))
        try:
            eq(lazy.status, 101, "raw client upgrade")
            fr = await lazy.read_frame()
            check(fr and b'"welcome"' in fr[2], "raw client welcome")
            eq(srv.admin_get("/ready")[0], 200, "/ready before SIGTERM")
            srv.signal(signal.SIGTERM)
            await apoll(lambda: not srv.alive() or srv.admin_get("/ready")[0] == 503,
                        "/ready to turn 503")
            check(srv.alive(), "server exited while a client was still lingering")
            # The listener is gone: new connections are refused while draining.
            try:
                s = socket.create_connection((h, p), timeout=IO_TIMEOUT)
                s.close()
                raise AssertionError("TCP connect succeeded during the drain")
            except ConnectionRefusedError:
                pass
            for ws in clients:
                await expect_closed(ws, 1001, SHUTDOWN_REASON)
            fr = await lazy.read_frame()
            check(fr is not None and fr[1] == 0x8, "raw client got %r, want a close frame"
                  % (fr,))
            eq(close_payload(fr[2]), (1001, SHUTDOWN_REASON), "raw client close payload")
        finally:
            lazy.close()
            for ws in clients:
                await ws.close()
        rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait)
        eq(rc, 0, "exit code after SIGTERM")
        try:
            s = socket.create_connection((h, p), timeout=IO_TIMEOUT)
            s.close()
            raise AssertionError("TCP connect succeeded after exit")
        except ConnectionRefusedError:
            pass


@test
async def sigterm_idle_exit_code(ctx):
    with ctx.server(echo_config()) as srv:
        async with connect(srv.url("/echo")) as ws:
            await ws.send("x")
            eq(await recv(ws), "x", "echo")
            rc = srv.stop()
            eq(rc, 0, "exit code after SIGTERM with an echo client")
            check(not os.path.exists(srv.port_file), "port file left after a clean exit")
            await expect_closed(ws, 1001, SHUTDOWN_REASON)


async def _stuck_client(srv):
    """A raw /echo client with a tiny receive window that has made the server queue output it
    will never read, so neither its echoes nor the server's close frame can be delivered."""
    h, p = srv.ws_host, srv.ws_port
    c = await RawClient.open(h, p, upgrade_request(h, p, "/echo"), rcvbuf=4096)
    eq(c.status, 101, "stuck client upgrade")
    chunk = encode_frame(0x2, os.urandom(32 * 1024))
    for _ in range(64):  # 2 MiB, under the default 8 MiB send_queue_max_bytes
        c.writer.write(chunk)
        try:
            await asyncio.wait_for(c.writer.drain(), 2)
        except asyncio.TimeoutError:
            break
    await apoll(lambda: srv.metrics()["wshub_bytes_in_total"] >= 512 * 1024,
                "the server to read the stuck client's messages")
    return c


@test
async def sigterm_deadline_with_stuck_client(ctx):
    """A client that reads nothing cannot hold the process past shutdown_timeout: exit 0."""
    import signal
    with ctx.server(echo_config(shutdown_timeout="1s")) as srv:
        c = await _stuck_client(srv)
        try:
            srv.signal(signal.SIGTERM)
            rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait, 15)
            eq(rc, 0, "exit code at shutdown_timeout with a stuck client")
        finally:
            c.close()


@test
async def second_signal_exits_at_once(ctx):
    """SIGTERM starts the drain; a second SIGTERM (or SIGINT) ends it long before the 60 s
    shutdown_timeout, still with exit code 0."""
    import signal
    for second in (signal.SIGTERM, signal.SIGINT):
        with ctx.server(echo_config(shutdown_timeout="60s")) as srv:
            c = await _stuck_client(srv)
            try:
                srv.signal(signal.SIGTERM)
                await apoll(lambda: srv.admin_get("/ready")[0] == 503, "/ready 503")
                check(srv.alive(), "exited before the second signal")
                srv.signal(second)
                rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait, 15)
                eq(rc, 0, "exit code after a second %s" % second.name)
            finally:
                c.close()


@test
async def sigint_drains_like_sigterm(ctx):
    import signal
    with ctx.server(base_config()) as srv:
        ws, _ = await open_json(srv.url())
        srv.signal(signal.SIGINT)
        await expect_closed(ws, 1001, SHUTDOWN_REASON)
        rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait, 15)
        eq(rc, 0, "exit code after SIGINT")


@test
def admin_endpoints(ctx):
    with ctx.server(base_config()) as srv:
        eq(srv.admin_get("/health"), (200, "ok\n"), "/health")
        eq(srv.admin_get("/ready"), (200, "ready\n"), "/ready")
        eq(srv.admin_get("/nope")[0], 404, "unknown admin path")
        eq(srv.admin_get("/metrics?x=1")[0], 200, "/metrics with a query string")
        conn = http.client.HTTPConnection(srv.admin_host, srv.admin_port, timeout=5)
        try:
            conn.request("POST", "/metrics", body=b"x")
            st = conn.getresponse().status
        finally:
            conn.close()
        check(400 <= st < 600, "POST /metrics answered %d" % st)
        # Many requests on one keep-alive connection, then the server is still fine.
        conn = http.client.HTTPConnection(srv.admin_host, srv.admin_port, timeout=5)
        try:
            for _ in range(50):
                conn.request("GET", "/metrics")
                r = conn.getresponse()
                harness.parse_metrics(r.read().decode())
                eq(r.status, 200, "keep-alive /metrics")
        finally:
            conn.close()
    # admin.enabled: false -> no admin line in the port file, the WebSocket side still works.
    cfg = base_config()
    cfg["admin"] = {"enabled": False}
    with ctx.server(cfg) as srv:
        eq(srv.admin_port, None, "admin port with admin.enabled false")


# ------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------

@test
async def metrics_consistent(ctx):
    with ctx.server(echo_config()) as srv:
        m = srv.metrics()
        for k in ("wshub_connections", "wshub_connections_accepted_total",
                  "wshub_connections_closed_total", "wshub_messages_in_total",
                  "wshub_messages_out_total", "wshub_slow_consumer_closes_total",
                  "wshub_bytes_in_total", "wshub_bytes_out_total"):
            eq(m.get(k), 0.0, "%s on a fresh server" % k)
        eq(metric(m, "wshub_plugin_info", {"plugin": "echo", "version": "1.0.0"}), 1.0,
           "wshub_plugin_info{echo}")
        json_clients = [(await open_json(srv.url()))[0] for _ in range(3)]
        echo_clients = [await connect(srv.url("/echo")) for _ in range(2)]
        await expect_status(srv.url("/missing"), 404)
        for i, ws in enumerate(json_clients):
            for j in range(2):
                await ws.send(json.dumps({"type": "ping", "id": "%d.%d" % (i, j)}))
                eq((await recv_json(ws)).get("id"), "%d.%d" % (i, j), "pong")
        await json_clients[0].send("not json")
        eq((await recv_json(json_clients[0])).get("code"), "bad_json", "error reply")
        for ws in echo_clients:
            for j in range(4):
                await ws.send("m%d" % j)
                eq(await recv(ws), "m%d" % j, "echo")
        m = srv.metrics()
        eq(m["wshub_connections"], 5.0, "wshub_connections")
        eq(m["wshub_connections_accepted_total"], 5.0, "connections_accepted_total")
        eq(m["wshub_messages_in_total"], 15.0, "messages_in_total (6 pings, 1 bad, 8 echo)")
        eq(m["wshub_messages_out_total"], 18.0,
           "messages_out_total (3 welcomes, 6 pongs, 1 error, 8 echoes)")
        eq(metric(m, "wshub_handshake_failures_total", {"reason": "no_path"}), 1.0,
           "handshake_failures_total{no_path}")
        eq(metric(m, "wshub_echo_messages_total", {"kind": "text"}), 8.0, "echo_messages{text}")
        check(m["wshub_bytes_in_total"] > 0 and m["wshub_bytes_out_total"] > 0, "byte counters")
        for ws in json_clients + echo_clients:
            await ws.close()
        await apoll(lambda: srv.metrics()["wshub_connections"] == 0.0, "wshub_connections == 0")
        m = srv.metrics()
        eq(m["wshub_connections_closed_total"], 5.0, "connections_closed_total")
        eq(metric(m, "wshub_closes_total", {"code": "1000"}), 5.0, "closes_total{1000}")
        eq(m["wshub_connections_accepted_total"], 5.0, "accepted_total after closing")
        await apoll(lambda: srv.metrics()["wshub_sockets"] == 0.0, "wshub_sockets == 0")


@test
def metrics_parser_selftest(ctx):
    text = ('# HELP a x\n# TYPE a counter\na 3\nb{x="1",y="q\\"z"} 2.5\n'
            'c{code="1009"} 1e3\n\n')
    m = harness.parse_metrics(text)
    eq(m, {"a": 3.0, 'b{x="1",y="q\\"z"}': 2.5, 'c{code="1009"}': 1000.0}, "parsed")
    eq(metric(m, "c", {"code": "1009"}), 1000.0, "lookup")
    for bad in ("a", "a{x=1} 2", "a 1\na 2"):
        try:
            harness.parse_metrics(bad)
        except ValueError:
            continue
        raise AssertionError("parse_metrics accepted %r" % bad)


# ------------------------------------------------------------------------------------------
# Heartbeat
# ------------------------------------------------------------------------------------------

@test
async def heartbeat(ctx):
    """heartbeat_interval 200ms, connection_timeout 1s: a client that answers every ping is never
    closed; a client that stays silent is pinged, then closed with 1001 "timeout"."""
    cfg = base_config(heartbeat_interval="200ms", connection_timeout="1s")
    with ctx.server(cfg) as srv:
        h, p = srv.ws_host, srv.ws_port
        # websockets answers pings by itself and sends nothing else.
        ws, w = await open_json(srv.url())
        eq(w.get("heartbeat"), 200, "welcome heartbeat")
        # A raw client that answers each ping at once and does nothing else.
        ponger = await RawClient.open(h, p, upgrade_request(h, p))
        silent = await RawClient.open(h, p, upgrade_request(h, p))
        try:
            eq((ponger.status, silent.status), (101, 101), "raw clients' upgrades")

            async def answer_pings():
                n = 0
                while True:
                    fr = await ponger.read_frame(timeout=30)
                    if fr is None or fr[1] == 0x8:
                        return n, fr
                    if fr[1] == 0x9:
                        n += 1
                        await ponger.send(0xA, fr[2])

            ponger_task = asyncio.ensure_future(answer_pings())
            pings = 0
            close = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                fr = await silent.read_frame(timeout=max(0.1, deadline - time.monotonic()))
                if fr is None:
                    break
                if fr[1] == 0x9:
                    pings += 1
                elif fr[1] == 0x8:
                    close = close_payload(fr[2])
                    break
            # Keep the answering clients for 3 s (3x connection_timeout) of pings only.
            await asyncio.sleep(3.0)
            problems = []
            if close != (1001, "timeout"):
                problems.append("silent client: close %r, want (1001, 'timeout')" % (close,))
            # Pings are due every 200 ms of silence, so several precede a 1 s timeout (a
            # count, not a clock: any scheduling that honours heartbeat_interval gets >= 2).
            if pings < 2:
                problems.append("silent client got %d ping(s) before its 1 s timeout with"
                                " heartbeat_interval 200ms" % pings)
            if ponger_task.done() and ponger_task.exception():
                problems.append("the answering raw client failed: %r" % ponger_task.exception())
            elif ponger_task.done():
                problems.append("a raw client that answered every ping was closed after %d"
                                " pings: %r" % ponger_task.result())
            if not ws.open:
                problems.append("websockets client (answers pings) closed: code %r reason %r"
                                % (ws.close_code, ws.close_reason))
            check(not problems, "; ".join(problems))
            await ws.send('{"type":"ping","id":"hb"}')
            eq((await recv_json(ws)).get("id"), "hb", "pong after 3 s of pings only")
            ponger_task.cancel()
        finally:
            silent.close()
            ponger.close()
            await ws.close()


@test
async def handshake_timeout(ctx):
    with ctx.server(base_config(handshake_timeout="200ms")) as srv:
        reader, writer = await asyncio.open_connection(srv.ws_host, srv.ws_port)
        try:
            writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finished
            await writer.drain()
            data = await asyncio.wait_for(reader.read(4096), IO_TIMEOUT)
            eq(data, b"", "bytes from the server before it closed an unfinished handshake")
        finally:
            writer.close()
        await apoll(lambda: metric(srv.metrics(), "wshub_handshake_failures_total",
                                   {"reason": "timeout"}) == 1.0,
                    "handshake_failures_total{timeout} == 1")
        eq(srv.metrics()["wshub_sockets"], 0.0, "sockets after the handshake timeout")


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

def _data(ctx, name):
    return os.path.join(ctx.data, name)


@test
def check_config_valid(ctx):
    r = run_wshubd(ctx.wshubd, ["--check-config", _data(ctx, "valid.yaml")],
                   env={"WSHUB_PLUGIN_DIR": ctx.plugin_dir})
    eq(r.returncode, 0, "exit code for valid.yaml (stderr: %s)" % r.stderr.strip())
    check("OK" in r.stdout, "no OK line: %r" % r.stdout)
    r = run_wshubd(ctx.wshubd, ["--check-config", "-c", _data(ctx, "valid.yaml")],
                   env={"WSHUB_PLUGIN_DIR": ctx.plugin_dir})
    eq(r.returncode, 0, "exit code for --check-config -c valid.yaml")


@test
def check_config_typo(ctx):
    path = _data(ctx, "typo.yaml")
    r = run_wshubd(ctx.wshubd, ["--check-config", path])
    eq(r.returncode, 2, "exit code for typo.yaml")
    check("%s:4:3" % path in r.stderr, "stderr does not name %s:4:3: %r" % (path, r.stderr))
    check("max_conections" in r.stderr and "max_connections" in r.stderr,
          "stderr lacks the key and the suggestion: %r" % r.stderr)


@test
def check_config_badtype(ctx):
    path = _data(ctx, "badtype.yaml")
    r = run_wshubd(ctx.wshubd, ["--check-config", path])
    eq(r.returncode, 2, "exit code for badtype.yaml")
    check("%s:4:" % path in r.stderr, "stderr does not name %s:4:COL: %r" % (path, r.stderr))
    check("max_connections" in r.stderr, "stderr does not name the key: %r" % r.stderr)


@test
def check_config_missing_file(ctx):
    r = run_wshubd(ctx.wshubd, ["--check-config", _data(ctx, "does-not-exist.yaml")])
    eq(r.returncode, 2, "exit code for a missing config file")
    check(r.stderr.strip(), "no message for a missing config file")


@test
def version_flag(ctx):
    for flag in ("--version", "-v"):
        r = run_wshubd(ctx.wshubd, [flag])
        eq(r.returncode, 0, "exit code of %s" % flag)
        out = r.stdout.strip()
        check(out.startswith("wshubd ") and "SDK ABI" in out, "%s printed %r" % (flag, out))
        ver = out.split()[1]
        parts = ver.split(".")
        check(len(parts) == 3 and all(x.isdigit() for x in parts), "version %r" % ver)


@test
def usage_errors(ctx):
    for args in (["--no-such-flag"], ["-Z"], ["-c"], ["stray-argument"]):
        r = run_wshubd(ctx.wshubd, args)
        eq(r.returncode, 2, "exit code for %r" % args)
        check("usage" in r.stderr, "no usage text on stderr for %r: %r" % (args, r.stderr))
    r = run_wshubd(ctx.wshubd, ["--help"])
    eq(r.returncode, 0, "exit code of --help")
    check("usage" in r.stdout, "--help printed %r" % r.stdout)


@test
def startup_config_error(ctx):
    # Serving (not --check-config) with a bad config: exit 2, no port file, error on stderr.
    srv = ctx.server(open(_data(ctx, "typo.yaml"), encoding="utf-8").read())
    try:
        srv.start()
    except harness.HarnessError as e:
        eq(srv.proc.returncode, 2, "exit code serving typo.yaml")
        check("max_conections" in str(e), "error not logged: %s" % e)
        return
    finally:
        srv.kill()
    raise AssertionError("server started with an invalid config")


@test
def missing_plugin(ctx):
    """A plugin that cannot be found is a configuration error (exit 2, serving or checking),
    unless it is optional: then the server runs without it."""
    cfg = base_config()
    cfg["plugins"] = [{"name": "no_such_plugin"}]
    srv = ctx.server(cfg)
    try:
        srv.start()
        raise AssertionError("server started with a missing plugin")
    except harness.HarnessError:
        eq(srv.proc.returncode, 2, "exit code serving with a missing plugin")
    finally:
        srv.kill()
    path = os.path.join(srv.tmpdir, "config.yaml")
    r = run_wshubd(ctx.wshubd, ["--check-config", path], env={"WSHUB_PLUGIN_DIR": ctx.plugin_dir})
    eq(r.returncode, 2, "--check-config exit code with a missing plugin")
    check("no_such_plugin" in r.stderr, "stderr does not name the plugin: %r" % r.stderr)
    cfg["plugins"] = [{"name": "no_such_plugin", "optional": True},
                      {"name": "echo", "config": {"path": "/echo"}}]
    with ctx.server(cfg) as srv:
        m = srv.metrics()
        eq(metric(m, "wshub_plugin_info", {"plugin": "echo", "version": "1.0.0"}), 1.0,
           "echo loaded next to a missing optional plugin")
        check(not any("no_such_plugin" in k for k in m), "the missing plugin has metrics")


@test
def listen_conflict_exit_1(ctx):
    # A port that is taken: a runtime failure, exit 1.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        cfg = base_config()
        cfg["server"]["listen"] = "127.0.0.1:%d" % s.getsockname()[1]
        srv = ctx.server(cfg)
        try:
            srv.start()
            raise AssertionError("server started on a port that is in use")
        except harness.HarnessError:
            eq(srv.proc.returncode, 1, "exit code when the port is in use")
        finally:
            srv.kill()
    finally:
        s.close()


# ------------------------------------------------------------------------------------------
# Runner
# ------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wshubd", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("-k", dest="only", help="run tests whose name contains this")
    args = ap.parse_args()
    if not os.access(args.wshubd, os.X_OK):
        print("FAIL setup: %s is not executable" % args.wshubd)
        print("0 passed, 1 failed")
        return 1
    return run_tests(TESTS, args, TEST_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
