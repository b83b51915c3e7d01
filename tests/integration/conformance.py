#!/usr/bin/python3
"""RFC 6455 + RFC 7692 conformance suite for wshubd, in the spirit of Autobahn|Testsuite.

The suite starts its own wshubd (temporary directory, --port-file), talks to the echo plugin over
raw sockets so that it can send malformed frames, and prints one line per case:

    ok 1.1.1 text message with payload 0
    FAIL 3.1 RSV1 set without extension: expected close 1002, got text message (5 bytes)

then `N passed, M failed`. The exit status is 1 when any case failed, 2 when the server could
not be started. Sections follow Autobahn's numbering where a case has an Autobahn twin:

    H   HTTP opening handshake             5   fragmentation
    1   framing                            6   UTF-8 handling (incl. fail fast)
    2   pings and pongs                    7   closing handshake
    3   reserved bits                      9   limits and performance (timed)
    4   opcodes                            12  permessage-deflate messages
                                           13  permessage-deflate negotiation and errors

Expectations use Autobahn's semantics: "echo" means the same message comes back; "fail CODE"
means the server sends a close frame with CODE and/or closes TCP, and nothing sent after the
violation is echoed. After every close the server must close TCP within CLOSE_WAIT seconds.

Usage: conformance.py --wshubd PATH [--plugin-dir DIR] [--only ID-PREFIX ...]
"""
import argparse
import base64
import codecs
import ctypes
import hashlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
OP_NAMES = {OP_CONT: 'continuation', OP_TEXT: 'text', OP_BINARY: 'binary', OP_CLOSE: 'close',
            OP_PING: 'ping', OP_PONG: 'pong'}
RSV1, RSV2, RSV3 = 0x4, 0x2, 0x1          # as a 3-bit field: RSV1 is the 0x40 header bit
WS_GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
DEFLATE_TAIL = b'\x00\x00\xff\xff'

IO_TIMEOUT = 5.0        # any single socket operation
FAIL_TIMEOUT = 3.0      # waiting for the server to fail a connection (fail fast included)
CLOSE_WAIT = 3.0        # waiting for the server to close TCP after the close handshake
CHOP_DELAY = 0.0003     # pause between byte-by-byte writes, so reads really split
KIB, MIB = 1024, 1024 * 1024


class CaseFailure(Exception):
    """A case's expectation did not hold; the message says what was expected and seen."""


def check(cond, msg):
    if not cond:
        raise CaseFailure(msg)


# ---- Frames -------------------------------------------------------------------------------------

def mask_bytes(data, key):
    """XORs data with the 4-byte key; big-int arithmetic keeps 16 MiB payloads fast."""
    n = len(data)
    if n == 0:
        return b''
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, 'big') ^ int.from_bytes(k, 'big')).to_bytes(n, 'big')


class Frame:
    """One WebSocket frame; rsv is the 3-bit RSV1|RSV2|RSV3 field."""

    def __init__(self, opcode, payload=b'', fin=True, rsv=0, masked=True):
        self.opcode, self.payload, self.fin, self.rsv = opcode, bytes(payload), fin, rsv
        self.masked = masked

    def encode(self, key=None):
        n = len(self.payload)
        b0 = (0x80 if self.fin else 0) | (self.rsv & 7) << 4 | (self.opcode & 0xF)
        mbit = 0x80 if self.masked else 0
        if n < 126:
            hdr = bytes([b0, mbit | n])
        elif n <= 0xFFFF:
            hdr = bytes([b0, mbit | 126]) + n.to_bytes(2, 'big')
        else:
            hdr = bytes([b0, mbit | 127]) + n.to_bytes(8, 'big')
        if not self.masked:
            return hdr + self.payload
        key = key if key is not None else os.urandom(4)
        return hdr + key + mask_bytes(self.payload, key)

    def describe(self):
        name = OP_NAMES.get(self.opcode, 'opcode 0x%X' % self.opcode)
        if self.opcode == OP_CLOSE:
            code = close_code(self.payload)
            return 'close %s' % ('(empty)' if code is None else code)
        return '%s %s(%d bytes)' % (name, 'message ' if self.opcode < 8 else '', len(self.payload))


def fr(opcode, payload=b'', fin=True, rsv=0, **kw):
    """A masked client frame as bytes."""
    if isinstance(payload, str):
        payload = payload.encode()
    return Frame(opcode, payload, fin, rsv, **kw).encode()


def close_payload(code, reason=b''):
    return code.to_bytes(2, 'big') + reason


def close_code(payload):
    return int.from_bytes(payload[:2], 'big') if len(payload) >= 2 else None


def deflate(data, wbits=15, level=6):
    """One message compressed per RFC 7692 §7.2.1 with a fresh context (no context takeover)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -max(wbits, 9))
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(DEFLATE_TAIL)
    return out[:-4]


def text_payload(n, seed=0):
    """n bytes of valid UTF-8 mixing ASCII and 2-byte characters (ASCII pads the tail)."""
    unit = 'Hello-µ@ßöäüàá-UTF-8!! %d ' % seed
    unit = unit.encode()
    body = unit * (n // len(unit))
    return body + b'*' * (n - len(body))


# ---- Client -------------------------------------------------------------------------------------

class Client:
    """A raw-socket WebSocket client that can be made to misbehave.

    next_event() returns the next complete thing from the server: a data message (a Frame with
    opcode TEXT/BINARY and the reassembled, inflated payload; .compressed tells whether RSV1 was
    set), a control frame, or None once the server closed TCP.
    """

    def __init__(self, port, path='/echo', extensions=None, timeout=IO_TIMEOUT, pipeline=b''):
        self.port, self.path, self.timeout = port, path, timeout
        self.buf = bytearray()
        self.pmd = None                  # dict of negotiated permessage-deflate parameters
        self.notes = []                  # remarks for the result line
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = ['GET %s HTTP/1.1' % path, 'Host: 127.0.0.1:%d' % port, 'Upgrade: websocket',
                 'Connection: Upgrade', 'Sec-WebSocket-Key: ' + self.key,
                 'Sec-WebSocket-Version: 13']
        if extensions is not None:
            lines.append('Sec-WebSocket-Extensions: ' + extensions)
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode() + pipeline)
        self.status, self.headers = read_http_head(self.sock, self.buf)
        if self.status != 101:
            self.close()
            raise CaseFailure('handshake: expected 101, got %s' % self.status)
        want = base64.b64encode(hashlib.sha1(self.key.encode() + WS_GUID).digest()).decode()
        check(self.headers.get('sec-websocket-accept') == want, 'bad Sec-WebSocket-Accept')
        ext = self.headers.get('sec-websocket-extensions')
        if ext:
            self.pmd = parse_pmd_response(ext)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data, chop=None, delay=0.0):
        """Writes bytes, optionally in pieces of `chop` bytes; a write error (the server already
        failed the connection) ends the write silently: what was sent is all it needs."""
        try:
            if not chop:
                self.sock.sendall(data)
                return
            for i in range(0, len(data), chop):
                self.sock.sendall(data[i:i + chop])
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send(self, opcode, payload=b'', fin=True, rsv=0, **kw):
        self.send_raw(fr(opcode, payload, fin, rsv), **kw)

    def send_message(self, opcode, payload, compress=False, frag=None):
        """Sends a whole message, compressed (RSV1 on the first frame only) and/or fragmented
        into frames of `frag` bytes."""
        rsv = 0
        if compress:
            wbits = (self.pmd or {}).get('client_max_window_bits') or 15
            payload, rsv = deflate(payload, wbits), RSV1
        if not frag or len(payload) <= frag:
            self.send_raw(fr(opcode, payload, True, rsv))
            return
        parts = [payload[i:i + frag] for i in range(0, len(payload), frag)]
        out = []
        for i, part in enumerate(parts):
            out.append(Frame(opcode if i == 0 else OP_CONT, part, i == len(parts) - 1,
                             rsv if i == 0 else 0).encode())
        self.send_raw(b''.join(out))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout('timed out')
        self.sock.settimeout(min(left, self.timeout))
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b''
        if not data:
            return False
        self.buf += data
        return True

    def recv_frame(self, timeout=None):
        """The next raw frame, or None on EOF; raises socket.timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            b = self.buf
            if len(b) >= 2:
                check(not b[1] & 0x80, 'server sent a masked frame')
                off = {126: 4, 127: 10}.get(b[1] & 0x7F, 2)
                n = int.from_bytes(b[2:off], 'big') if off > 2 else b[1] & 0x7F
                if len(b) >= off and len(b) >= off + n:
                    f = Frame(b[0] & 0xF, bytes(b[off:off + n]), bool(b[0] & 0x80),
                              (b[0] >> 4) & 7, masked=False)
                    del self.buf[:off + n]
                    return f
            if not self._fill(deadline):
                if self.buf:
                    raise CaseFailure('server closed TCP inside a frame')
                return None

    def next_event(self, timeout=None):
        """The next message or control frame (see the class comment)."""
        msg = None
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                check(msg is None, 'server closed TCP inside a fragmented message')
                return None
            if f.rsv & ~RSV1 or (f.rsv and (not self.pmd or f.opcode >= 8 or f.opcode == 0)):
                raise CaseFailure('server sent %s with RSV bits %d' % (f.describe(), f.rsv))
            if f.opcode >= 8:
                check(f.fin and len(f.payload) <= 125, 'server sent a bad control frame')
                if f.opcode == OP_CLOSE:
                    check_server_close(f.payload)
                return f
            if f.opcode == OP_CONT:
                check(msg is not None, 'server sent a continuation without a start')
                msg.payload += f.payload
            else:
                check(msg is None, 'server started a message inside another')
                check(f.opcode in (OP_TEXT, OP_BINARY), 'server used opcode %d' % f.opcode)
                msg = f
            if f.fin:
                msg.compressed = bool(msg.rsv & RSV1)
                if msg.compressed:
                    wbits = self.pmd.get('server_max_window_bits') or 15
                    try:
                        msg.payload = zlib.decompressobj(-wbits).decompress(
                            msg.payload + DEFLATE_TAIL)
                    except zlib.error as e:
                        raise CaseFailure('server sent bad deflate data (window %d): %s'
                                          % (wbits, e))
                if msg.opcode == OP_TEXT:
                    try:
                        msg.payload.decode('utf-8')
                    except UnicodeDecodeError:
                        raise CaseFailure('server sent a text message with invalid UTF-8')
                return msg

    # -- expectations ---------------------------------------------------------------------

    def expect_message(self, opcode, payload):
        ev = self.next_event()
        check(ev is not None, 'expected %s message (%d bytes), server closed TCP'
              % (OP_NAMES[opcode], len(payload)))
        check(ev.opcode == opcode, 'expected %s message (%d bytes), got %s'
              % (OP_NAMES[opcode], len(payload), ev.describe()))
        if ev.payload != payload:
            at = next((i for i, (a, b) in enumerate(zip(ev.payload, payload)) if a != b),
                      min(len(ev.payload), len(payload)))
            raise CaseFailure('echo differs: sent %d bytes, got %d, first difference at %d'
                              % (len(payload), len(ev.payload), at))
        return ev

    def expect_pong(self, payload):
        ev = self.next_event()
        check(ev is not None, 'expected pong, server closed TCP')
        check(ev.opcode == OP_PONG, 'expected pong (%d bytes), got %s'
              % (len(payload), ev.describe()))
        check(ev.payload == payload, 'pong payload differs from the ping payload')

    def expect_eof(self, timeout=CLOSE_WAIT):
        """The server must close TCP; frames before the EOF are a failure."""
        try:
            f = self.recv_frame(timeout)
        except socket.timeout:
            raise CaseFailure('server did not close TCP within %.0f s' % timeout)
        check(f is None, 'after the close handshake the server sent %s' % f.describe()
              if f else '')

    def expect_fail(self, code):
        """The server fails the connection: close `code` (then TCP EOF) or a bare TCP close,
        with no data message in between."""
        try:
            ev = self.next_event(FAIL_TIMEOUT)
            while ev is not None and ev.opcode == OP_PONG:
                ev = self.next_event(FAIL_TIMEOUT)   # a pong owed for an earlier ping
        except socket.timeout:
            raise CaseFailure('expected close %d, server did nothing within %.0f s'
                              % (code, FAIL_TIMEOUT))
        if ev is None:
            self.notes.append('TCP closed without a close frame')
            return
        check(ev.opcode == OP_CLOSE, 'expected close %d, got %s' % (code, ev.describe()))
        check(close_code(ev.payload) == code, 'expected close %d, got close %s'
              % (code, close_code(ev.payload)))
        self.send_raw(fr(OP_CLOSE, close_payload(1000)))
        self.expect_eof()

    def expect_close(self, code, reason=None):
        """A close frame echoing `code` (None: an empty close or 1000), then TCP EOF."""
        ev = self.next_event(FAIL_TIMEOUT)
        check(ev is not None, 'expected close, server closed TCP without a close frame')
        check(ev.opcode == OP_CLOSE, 'expected close %s, got %s' % (code, ev.describe()))
        got = close_code(ev.payload)
        if code is None:
            check(got in (None, 1000), 'expected an empty close or 1000, got %s' % got)
        else:
            check(got == code, 'expected close %d, got close %s' % (code, got))
        if reason is not None:
            check(ev.payload[2:] == reason, 'close reason not echoed')
        self.expect_eof()

    def finish(self):
        """Clean close: ours, the echoed close as the very next event, then EOF."""
        self.send(OP_CLOSE, close_payload(1000))
        self.expect_close(1000)


def check_server_close(payload):
    """A close frame from the server: empty, or a code it may send and a UTF-8 reason."""
    if not payload:
        return
    code = close_code(payload)
    check(code is not None and (1000 <= code <= 1003 or 1007 <= code <= 1014 or
                                3000 <= code <= 4999),
          'server sent close payload %r (bad code)' % payload[:2])
    try:
        payload[2:].decode('utf-8')
    except UnicodeDecodeError:
        raise CaseFailure('server sent a close reason that is not UTF-8')


def read_http_head(sock, buf, limit=65536):
    """Reads an HTTP response head into (status, {lower-name: value}); surplus stays in buf."""
    while b'\r\n\r\n' not in buf:
        data = sock.recv(65536)
        check(data, 'server closed TCP before the HTTP response head ended (%r)' % bytes(buf[:80]))
        buf += data
        check(len(buf) < limit, 'HTTP response head too long')
    end = buf.index(b'\r\n\r\n')
    lines = bytes(buf[:end]).decode('latin-1').split('\r\n')
    del buf[:end + 4]
    m = re.match(r'HTTP/1\.1 (\d{3}) ', lines[0] + ' ')
    check(m, 'bad status line %r' % lines[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    return int(m.group(1)), headers


def parse_pmd_response(value):
    """Sec-WebSocket-Extensions of a 101 -> dict of permessage-deflate parameters."""
    parts = [p.strip() for p in value.split(';')]
    check(parts[0] == 'permessage-deflate', 'unexpected extension %r' % value)
    params = {}
    for p in parts[1:]:
        name, eq, v = p.partition('=')
        check(name not in params, 'duplicate parameter %s in %r' % (name, value))
        params[name] = int(v.strip('"')) if eq else True
    check(params.get('server_no_context_takeover') is True and
          params.get('client_no_context_takeover') is True,
          'response lacks the no_context_takeover parameters: %r' % value)
    return params


# ---- Server -------------------------------------------------------------------------------------

class Server:
    """One wshubd in a temporary directory, started with a port file and stopped with SIGTERM
    (SIGKILL after a bound)."""

    def __init__(self, wshubd, plugin_dir, workdir, name, settings):
        self.dir = tempfile.mkdtemp(prefix=name + '-', dir=workdir)  # unique across restarts
        cfg = os.path.join(self.dir, 'wshub.yaml')
        with open(cfg, 'w') as f:
            f.write(CONFIG % settings)
        self.port_file = os.path.join(self.dir, 'ports')
        self.log_path = os.path.join(self.dir, 'wshubd.log')
        env = dict(os.environ)
        if plugin_dir:
            env['WSHUB_PLUGIN_DIR'] = plugin_dir
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen([wshubd, '-c', cfg, '--port-file', self.port_file],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, cwd=self.dir, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.exists(self.port_file):      # written whole (rename) once listening
                with open(self.port_file) as f:
                    ports = dict(line.split() for line in f if line.strip())
                self.port = int(ports['server'].rpartition(':')[2])
                self.admin_port = int(ports['admin'].rpartition(':')[2])
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError('wshubd did not start (%s): %s' % (
            'exited %s' % self.proc.returncode if self.proc.returncode is not None
            else 'no port file', self.log_tail()))

    def log_tail(self, n=15):
        try:
            with open(self.log_path, 'rb') as f:
                return b''.join(f.readlines()[-n:]).decode('utf-8', 'replace')
        except OSError:
            return ''

    def gauge(self, name):
        """A gauge from the admin listener's /metrics."""
        url = 'http://127.0.0.1:%d/metrics' % self.admin_port
        with urllib.request.urlopen(url, timeout=IO_TIMEOUT) as r:
            text = r.read().decode()
        m = re.search(r'^%s(?:\{[^}]*\})? (\S+)$' % name, text, re.M)
        check(m, '%s not in /metrics' % name)
        return float(m.group(1))

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def die_with_parent():
    """In the child before exec: SIGTERM it if this script dies without cleaning up (SIGKILL)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)      # PR_SET_PDEATHSIG


# The servers a case can ask for: `small` for the size limits, `idle` for server-side timeouts.
SERVERS = {
    'main': {'max': '64MiB', 'heartbeat': '1h', 'idle': '2h'},
    'small': {'max': '1MiB', 'heartbeat': '1h', 'idle': '2h'},
    'idle': {'max': '64MiB', 'heartbeat': '300ms', 'idle': '1500ms'},
}
CONFIG = """\
server:
  listen: 127.0.0.1:0
  path: /ws
  max_message_size: %(max)s
  heartbeat_interval: %(heartbeat)s
  connection_timeout: %(idle)s
  handshake_timeout: 1s
  send_queue_max_bytes: 256MiB
  max_header_size: 8KiB
  permessage_deflate: true
  deflate_min_size: 256
  shutdown_timeout: 2s
admin:
  enabled: true
  listen: 127.0.0.1:0
log:
  level: warn
plugins:
  - name: echo
    config:
      path: /echo
"""


# ---- Case registry and the scripted-case runner -------------------------------------------------

CASES = []


def case(cid, desc, fn, *args, **kw):
    """Registers fn(ctx, *args, **kw) as case `cid`."""
    CASES.append((cid, desc, lambda ctx: fn(ctx, *args, **kw)))


def run_script(ctx, send, expect, chop=None, path='/echo', extensions=None, server='main'):
    """The common case shape: open a connection, write `send` (frames as bytes, or a float to
    pause), optionally `chop`ped into pieces, then check `expect` in order:
        ('msg', opcode, payload)  ('pong', payload)  ('fail', code)  ('close', code|None)
    A script that does not end in fail/close ends with a clean close, which must be the next
    thing the server sends (so nothing unexpected was left in between)."""
    c = Client(ctx.port(server), path, extensions)
    try:
        for item in send:
            if isinstance(item, float):
                time.sleep(item)
            else:
                c.send_raw(item, chop, CHOP_DELAY if chop == 1 else 0.0)
        for e in expect:
            if e[0] == 'msg':
                c.expect_message(e[1], e[2])
            elif e[0] == 'pong':
                c.expect_pong(e[1])
            elif e[0] == 'fail':
                c.expect_fail(e[1])
                return
            elif e[0] == 'close':
                c.expect_close(e[1], *e[2:])
                return
        c.finish()
    finally:
        ctx.notes.extend(c.notes)
        c.close()


def scripted(cid, desc, send, expect, chop_too=True, **kw):
    """Registers a scripted case, and (chop_too) its twin sent byte by byte."""
    case(cid, desc, run_script, send, expect, **kw)
    if chop_too:
        case(cid + 'b', desc + ', byte by byte', run_script, send, expect, chop=1, **kw)


def canary():
    """A valid message sent after a violation: it must never be echoed."""
    return fr(OP_TEXT, 'canary: must not be echoed')


# ---- H: HTTP opening handshake ------------------------------------------------------------------

def http_exchange(ctx, request, timeout=IO_TIMEOUT):
    """Sends a request; returns (status, headers, closed) where closed tells whether the server
    closed TCP within CLOSE_WAIT after the response body (Content-Length) of an error."""
    s = socket.create_connection(('127.0.0.1', ctx.port()), timeout=timeout)
    try:
        s.sendall(request)
        buf = bytearray()
        status, headers = read_http_head(s, buf)
        if status == 101:
            return status, headers, None
        want = int(headers.get('content-length', '0'))
        s.settimeout(CLOSE_WAIT)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                buf += data
                check(len(buf) <= want, 'more than Content-Length bytes after the response')
        except socket.timeout:
            return status, headers, False
        except ConnectionResetError:
            pass
        check(len(buf) == want, 'response body is %d bytes, Content-Length %d' % (len(buf), want))
        return status, headers, True
    finally:
        s.close()


def request(path='/echo', method='GET', version='13', key=True, extra=(), proto='HTTP/1.1',
            upgrade=True, connection=True):
    lines = ['%s %s %s' % (method, path, proto), 'Host: 127.0.0.1']
    if upgrade:
        lines.append('Upgrade: websocket')
    if connection:
        lines.append('Connection: Upgrade')
    if key:
        lines.append('Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
    if version is not None:
        lines.append('Sec-WebSocket-Version: ' + version)
    lines.extend(extra)
    return ('\r\n'.join(lines) + '\r\n\r\n').encode()


def hs_status(ctx, req, status, header=None):
    got, headers, closed = http_exchange(ctx, req)
    check(got == status, 'expected HTTP %d, got %d' % (status, got))
    check(closed is not False, 'server kept TCP open after HTTP %d' % got)
    if header:
        name, value = header
        check(headers.get(name.lower()) == value, 'expected header %s: %s, got %r'
              % (name, value, headers.get(name.lower())))


def hs_accept_rfc_example(ctx):
    """RFC 6455 §1.3's sample key must produce the sample accept value."""
    status, headers, _ = http_exchange(ctx, request())
    check(status == 101, 'expected 101, got %d' % status)
    check(headers.get('sec-websocket-accept') == 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
          'wrong Sec-WebSocket-Accept %r' % headers.get('sec-websocket-accept'))
    check(headers.get('upgrade', '').lower() == 'websocket', 'no Upgrade: websocket')
    check('sec-websocket-extensions' not in headers, 'extension without an offer')


def hs_pipelined(ctx):
    """Frames sent in the same write as the request head are processed after the upgrade."""
    c = Client(ctx.port(), pipeline=fr(OP_TEXT, 'early') + fr(OP_PING, 'p') + fr(OP_BINARY, b'1'))
    try:
        c.expect_message(OP_TEXT, b'early')
        c.expect_pong(b'p')
        c.expect_message(OP_BINARY, b'1')
        c.finish()
    finally:
        c.close()


def hs_json_welcome(ctx):
    c = Client(ctx.port(), '/ws')
    try:
        ev = c.next_event()
        check(ev is not None and ev.opcode == OP_TEXT, 'expected the welcome text message, got %s'
              % (ev.describe() if ev else 'EOF'))
        check(b'"welcome"' in ev.payload, 'first message is not a welcome: %r' % ev.payload[:80])
        c.finish()
    finally:
        c.close()


def hs_dropped(ctx, send):
    """handshake_timeout is 1 s and the tick 1 s: a client that sends nothing (or a head that
    never ends) must be disconnected within 3 s, without a response."""
    s = socket.create_connection(('127.0.0.1', ctx.port()), timeout=IO_TIMEOUT)
    try:
        s.sendall(send)
        start = time.monotonic()
        s.settimeout(3.0)
        try:
            data = s.recv(100)
        except socket.timeout:
            raise CaseFailure('client still connected after 3 s')
        except ConnectionResetError:
            data = b''
        check(data == b'', 'server sent %r' % data[:40])
        ctx.note('closed after %.2f s' % (time.monotonic() - start))
    finally:
        s.close()


def register_handshake():
    scripted('H.1', 'valid upgrade echoes', [fr(OP_TEXT, 'hello')], [('msg', OP_TEXT, b'hello')],
             chop_too=False)
    case('H.2', 'RFC 6455 sample key gets the sample accept value', hs_accept_rfc_example)
    case('H.3', 'bad version 8 -> 426 with Sec-WebSocket-Version: 13', hs_status,
         request(version='8'), 426, ('Sec-WebSocket-Version', '13'))
    case('H.4', 'missing version -> 400', hs_status, request(version=None), 400)
    case('H.5', 'missing key -> 400', hs_status, request(key=False), 400)
    case('H.6', 'malformed key -> 400', hs_status,
         request(key=False, extra=['Sec-WebSocket-Key: c2hvcnQ=']), 400)
    case('H.7', 'wrong path -> 404', hs_status, request(path='/nowhere'), 404)
    case('H.8', 'POST -> 405', hs_status, request(method='POST'), 405)
    case('H.9', 'HTTP/1.0 -> 400', hs_status, request(proto='HTTP/1.0'), 400)
    case('H.10', 'missing Upgrade -> 400', hs_status, request(upgrade=False), 400)
    case('H.11', 'missing Connection: Upgrade -> 400', hs_status, request(connection=False), 400)
    case('H.12', 'oversize header (> max_header_size 8KiB) -> 431', hs_status,
         request(extra=['X-Big: ' + 'a' * (10 * KIB)]), 431)
    case('H.12a', 'request head just under max_header_size is accepted', hs_status,
         request(extra=['X-Big: ' + 'a' * (8 * KIB - 300)]), 101)
    case('H.13', 'JSON path /ws sends the welcome message first', hs_json_welcome)
    case('H.13a', 'frames in the same write as the request head are processed', hs_pipelined)
    case('H.14', 'silent client dropped after handshake_timeout', hs_dropped, b'')
    case('H.15', 'unfinished request head dropped after handshake_timeout', hs_dropped,
         b'GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n')


# ---- 1: framing ---------------------------------------------------------------------------------

def register_framing():
    sizes = [0, 125, 126, 127, 128, 65535, 65536]
    for sec, op in ((1, OP_TEXT), (2, OP_BINARY)):
        for i, n in enumerate(sizes, 1):
            data = text_payload(n) if op == OP_TEXT else bytes(random.Random(n).randbytes(n))
            name = '%s message with payload %d' % (OP_NAMES[op], n)
            case('1.%d.%d' % (sec, i), name, run_script, [fr(op, data)], [('msg', op, data)])
            chop = 1 if n <= 128 else 997
            case('1.%d.%db' % (sec, i), name + (', byte by byte' if chop == 1
                                                  else ', in chops of 997'),
                 run_script, [fr(op, data)], [('msg', op, data)], chop=chop)
    data = b'unmasked'
    case('1.3.2', 'unmasked client frame -> 1002', run_script,
         [fr(OP_TEXT, data, masked=False), canary()], [('fail', 1002)])
    case('1.3.3', '64-bit length with the most significant bit set -> 1002', run_script,
         [bytes([0x82, 0xFF]) + b'\x80' + b'\x00' * 7 + b'\x00\x00\x00\x00'], [('fail', 1002)])


# ---- 2: pings and pongs -------------------------------------------------------------------------

def register_pings():
    p125 = bytes(range(125))
    scripted('2.1', 'ping without payload -> pong', [fr(OP_PING)], [('pong', b'')])
    scripted('2.2', 'ping with small text payload -> pong', [fr(OP_PING, 'Hello, world!')],
             [('pong', b'Hello, world!')])
    scripted('2.3', 'ping with small binary payload -> pong', [fr(OP_PING, b'\x00\xff\xfe\xfd')],
             [('pong', b'\x00\xff\xfe\xfd')])
    scripted('2.4', 'ping with 125-byte payload -> pong', [fr(OP_PING, p125)], [('pong', p125)])
    scripted('2.5', 'ping with 126-byte payload -> 1002', [fr(OP_PING, b'\xfe' * 126), canary()],
             [('fail', 1002)])
    scripted('2.7', 'unsolicited pong without payload is ignored',
             [fr(OP_PONG), fr(OP_PING, 'after')], [('pong', b'after')])
    scripted('2.8', 'unsolicited pong with payload is ignored',
             [fr(OP_PONG, 'unsolicited'), fr(OP_PING, 'after')], [('pong', b'after')])
    scripted('2.9', 'unsolicited pong, then ping -> pong with the ping payload',
             [fr(OP_PONG, 'unsolicited'), fr(OP_PING, 'ping payload')],
             [('pong', b'ping payload')])
    pings = [fr(OP_PING, 'ping %d' % i) for i in range(10)]
    scripted('2.10', '10 pings in a row -> 10 pongs', pings,
             [('pong', b'ping %d' % i) for i in range(10)])
    scripted('2.12', 'ping after a fragment start -> pong, then the message',
             [fr(OP_TEXT, 'frag1', fin=False), fr(OP_PING, 'in between'),
              fr(OP_CONT, 'frag2')],
             [('pong', b'in between'), ('msg', OP_TEXT, b'frag1frag2')])


# ---- 3: reserved bits ---------------------------------------------------------------------------

def register_rsv():
    hello = b'Hello, world!'
    rows = [
        ('3.1', 'RSV1 on text, no extension', [fr(OP_TEXT, hello, rsv=RSV1)], []),
        ('3.2', 'RSV2 on text after a valid text',
         [fr(OP_TEXT, hello), fr(OP_TEXT, hello, rsv=RSV2)], [hello]),
        ('3.3', 'RSV3 on text between valid texts',
         [fr(OP_TEXT, hello), fr(OP_TEXT, hello, rsv=RSV3)], [hello]),
        ('3.4', 'RSV1+RSV2 on text', [fr(OP_TEXT, hello), fr(OP_TEXT, hello, rsv=RSV1 | RSV2)],
         [hello]),
        ('3.5', 'RSV1+RSV3 on binary', [fr(OP_BINARY, b'\x00\xff', rsv=RSV1 | RSV3)], []),
        ('3.6', 'RSV2+RSV3 on ping', [fr(OP_PING, hello, rsv=RSV2 | RSV3)], []),
        ('3.7', 'RSV1+RSV2+RSV3 on close', [fr(OP_CLOSE, close_payload(1000), rsv=7)], []),
        ('3.8', 'RSV1 on a continuation, no extension',
         [fr(OP_TEXT, 'a', fin=False), fr(OP_CONT, 'b', rsv=RSV1)], []),
    ]
    for cid, desc, send, echoes in rows:
        scripted(cid, desc + ' -> 1002', send + [canary()],
                 [('msg', OP_TEXT, e) for e in echoes] + [('fail', 1002)])


# ---- 4: opcodes ---------------------------------------------------------------------------------

def register_opcodes():
    hello = b'Hello, world!'
    for sub, ops in ((1, range(3, 8)), (2, range(0xB, 0x10))):
        for i, op in enumerate(ops, 1):
            kind = 'data' if op < 8 else 'control'
            scripted('4.%d.%d' % (sub, i), 'reserved %s opcode 0x%X -> 1002' % (kind, op),
                     [fr(op), canary()], [('fail', 1002)], chop_too=False)
            scripted('4.%d.%da' % (sub, i),
                     'reserved opcode 0x%X with payload after a valid text -> 1002' % op,
                     [fr(OP_TEXT, hello), fr(op, b'reserved'), canary()],
                     [('msg', OP_TEXT, hello), ('fail', 1002)], chop_too=(i == 1))


# ---- 5: fragmentation ---------------------------------------------------------------------------

def fragments(op, data, sizes):
    """Frames of one message split at the given fragment sizes (the last takes the rest)."""
    out, pos = [], 0
    for i, n in enumerate(sizes + [len(data)]):
        last = i == len(sizes)
        part = data[pos:] if last else data[pos:pos + n]
        pos += len(part)
        out.append(fr(op if i == 0 else OP_CONT, part, fin=last))
    return out


def register_fragmentation():
    frag, ok = b'fragment', ('msg', OP_TEXT, b'fragment1fragment2')
    f1, f2 = fr(OP_TEXT, 'fragment1', fin=False), fr(OP_CONT, 'fragment2')
    scripted('5.1', 'ping in 2 fragments -> 1002',
             [fr(OP_PING, 'frag1', fin=False), fr(OP_CONT, 'frag2'), canary()], [('fail', 1002)])
    scripted('5.2', 'pong in 2 fragments -> 1002',
             [fr(OP_PONG, 'frag1', fin=False), fr(OP_CONT, 'frag2'), canary()], [('fail', 1002)])
    scripted('5.3', 'text in 2 fragments -> one message', [f1, f2], [ok])
    scripted('5.6', 'text in 2 fragments with a ping in between', [f1, fr(OP_PING, 'p'), f2],
             [('pong', b'p'), ok])
    scripted('5.7', 'text in 2 fragments with a pong in between (ignored)',
             [f1, fr(OP_PONG, 'p'), f2], [ok])
    scripted('5.9', 'continuation with FIN, no message started -> 1002',
             [fr(OP_CONT, frag), canary()], [('fail', 1002)])
    scripted('5.12', 'continuation without FIN, no message started -> 1002',
             [fr(OP_CONT, frag, fin=False), canary()], [('fail', 1002)])
    scripted('5.15', 'message in 2 fragments, then continuation without start -> 1002',
             [f1, f2, fr(OP_CONT, 'fragment3', fin=False), fr(OP_CONT, 'fragment4'), canary()],
             [ok, ('fail', 1002)])
    scripted('5.16', 'continuation, text start, continuation -> 1002',
             [fr(OP_CONT, 'fragment1', fin=False), f1, f2, canary()], [('fail', 1002)])
    scripted('5.18', 'new TEXT while a text message is fragmented -> 1002',
             [f1, fr(OP_TEXT, 'fragment2'), canary()], [('fail', 1002)])
    scripted('5.18a', 'new BINARY while a text message is fragmented -> 1002',
             [f1, fr(OP_BINARY, 'fragment2'), canary()], [('fail', 1002)])
    parts = [b'fragment%d' % i for i in range(1, 6)]
    send = [fr(OP_TEXT, parts[0], fin=False), fr(OP_CONT, parts[1], fin=False),
            fr(OP_PING, 'pongme 1!'), fr(OP_CONT, parts[2], fin=False), 0.3,
            fr(OP_CONT, parts[3], fin=False), fr(OP_PING, 'pongme 2!'), fr(OP_CONT, parts[4])]
    scripted('5.19', 'text in 5 fragments with 2 pings interleaved (and a pause)', send,
             [('pong', b'pongme 1!'), ('pong', b'pongme 2!'), ('msg', OP_TEXT, b''.join(parts))])
    three = text_payload(300)
    scripted('5.21', 'text in 3 fragments', fragments(OP_TEXT, three, [100, 100]),
             [('msg', OP_TEXT, three)])
    many = text_payload(1000, 7)
    scripted('5.22', 'text in 100 fragments of 10 bytes', fragments(OP_TEXT, many, [10] * 99),
             [('msg', OP_TEXT, many)])
    binary = bytes(range(256)) * 4
    scripted('5.23', 'binary in 4 fragments', fragments(OP_BINARY, binary, [1, 255, 512]),
             [('msg', OP_BINARY, binary)])
    scripted('5.24', 'text in 3 empty fragments -> empty message',
             [fr(OP_TEXT, '', fin=False), fr(OP_CONT, '', fin=False), fr(OP_CONT, '')],
             [('msg', OP_TEXT, b'')])
    scripted('5.25', 'empty fragments around data',
             [fr(OP_TEXT, '', fin=False), fr(OP_CONT, 'data', fin=False),
              fr(OP_CONT, '', fin=False), fr(OP_CONT, '')], [('msg', OP_TEXT, b'data')])
    scripted('5.26', 'binary: empty final fragment',
             [fr(OP_BINARY, b'\x01\x02', fin=False), fr(OP_CONT, b'')],
             [('msg', OP_BINARY, b'\x01\x02')])
    scripted('5.27', 'two fragmented messages back to back', [f1, f2, f1, f2], [ok, ok])
    scripted('5.28', 'close inside a fragmented message -> close echoed, message dropped',
             [f1, fr(OP_CLOSE, close_payload(1000)), f2], [('close', 1000)])


# ---- 6: UTF-8 -----------------------------------------------------------------------------------

def H(s):
    return bytes.fromhex(s.replace(' ', ''))


def spaced(lo, hi):
    """Each byte of range(lo, hi) followed by a space."""
    return b''.join(bytes([b, 0x20]) for b in range(lo, hi))


KOSME = H('ce ba e1 bd b9 cf 83 ce bc ce b5')
UTF8_VECTORS = [
    # (description, bytes); validity is decided by Python's strict decoder (RFC 3629).
    ('empty', b''),
    ('kosme', KOSME),
    ('Hello-µ@ßöäüàá-UTF-8!!', 'Hello-µ@ßöäüàá-UTF-8!!'.encode()),
    ('first 1-byte U+0000', H('00')), ('first 2-byte U+0080', H('c2 80')),
    ('first 3-byte U+0800', H('e0 a0 80')), ('first 4-byte U+10000', H('f0 90 80 80')),
    ('last 1-byte U+007F', H('7f')), ('last 2-byte U+07FF', H('df bf')),
    ('last 3-byte U+FFFF', H('ef bf bf')), ('last 4-byte U+10FFFF', H('f4 8f bf bf')),
    ('U+D7FF', H('ed 9f bf')), ('U+E000', H('ee 80 80')), ('U+FFFD', H('ef bf bd')),
    ('noncharacters U+FFFE U+FFFF', H('ef bf be ef bf bf')),
    ('noncharacters U+1FFFE U+10FFFE', H('f0 9f bf be f4 8f bf be')),
    ('kosme with surrogate U+D800 then "edited"', KOSME + H('ed a0 80') + b'edited'),
    ('4-byte > U+10FFFF: U+110000', H('f4 90 80 80')),
    ('4-byte > U+10FFFF: U+1FFFFF', H('f7 bf bf bf')),
    ('5-byte first possible', H('f8 88 80 80 80')), ('6-byte first', H('fc 84 80 80 80 80')),
    ('5-byte last possible', H('fb bf bf bf bf')), ('6-byte last', H('fd bf bf bf bf bf')),
    ('lone continuation 0x80', H('80')), ('lone continuation 0xBF', H('bf')),
    ('2 continuations', H('80 bf')), ('3 continuations', H('80 bf 80')),
    ('7 continuations', H('80 bf 80 bf 80 bf 80')),
    ('all 64 continuation bytes', bytes(range(0x80, 0xC0))),
    ('lonely 2-byte starts each followed by space', spaced(0xC0, 0xE0)),
    ('lonely 3-byte starts each followed by space', spaced(0xE0, 0xF0)),
    ('lonely 4-byte starts each followed by space', spaced(0xF0, 0xF8)),
    ('lonely 5/6-byte starts followed by space', H('f8 20 fb 20 fc 20 fd 20')),
    ('2-byte missing last byte at end (0xC0)', H('c0')),
    ('3-byte missing last byte at end', H('e0 80')),
    ('4-byte missing last byte at end', H('f0 80 80')),
    ('2-byte U+07FF missing last byte at end', H('df')),
    ('3-byte U+FFFF missing last byte at end', H('ef bf')),
    ('4-byte U+10FFFF missing last byte at end', H('f4 8f bf')),
    ('kosme then truncated 2-byte at end', KOSME + H('ce')),
    ('kosme then truncated 4-byte at end', KOSME + H('f0 90 80')),
    ('concatenated incomplete sequences', H('c0 e0 80 f0 80 80 f8 80 80 80 fc 80 80 80 80 df '
                                            'ef bf f7 bf bf fb bf bf bf fd bf bf bf bf')),
    ('impossible byte 0xFE', H('fe')), ('impossible byte 0xFF', H('ff')),
    ('impossible bytes FE FE FF FF', H('fe fe ff ff')),
    ('overlong "/" 2-byte', H('c0 af')), ('overlong "/" 3-byte', H('e0 80 af')),
    ('overlong "/" 4-byte', H('f0 80 80 af')), ('overlong "/" 5-byte', H('f8 80 80 80 af')),
    ('overlong "/" 6-byte', H('fc 80 80 80 80 af')),
    ('maximum overlong 2-byte', H('c1 bf')), ('maximum overlong 3-byte', H('e0 9f bf')),
    ('maximum overlong 4-byte', H('f0 8f bf bf')),
    ('overlong NUL 2-byte', H('c0 80')), ('overlong NUL 3-byte', H('e0 80 80')),
    ('overlong NUL 4-byte', H('f0 80 80 80')),
    ('surrogate U+D800', H('ed a0 80')), ('surrogate U+DB7F', H('ed ad bf')),
    ('surrogate U+DB80', H('ed ae 80')), ('surrogate U+DBFF', H('ed af bf')),
    ('surrogate U+DC00', H('ed b0 80')), ('surrogate U+DF80', H('ed be 80')),
    ('surrogate U+DFFF', H('ed bf bf')),
    ('surrogate pair U+D800 U+DC00', H('ed a0 80 ed b0 80')),
    ('surrogate pair U+DBFF U+DFFF', H('ed af bf ed bf bf')),
    ('valid text then invalid 0xFF in the middle', b'valid text' + H('ff') + b'more text'),
]


def utf8_valid(data):
    try:
        data.decode('utf-8')
        return True
    except UnicodeDecodeError:
        return False


def utf8_fail_prefix(data):
    """The shortest prefix that no continuation can make valid, or None (the sequence is only
    invalid because it is truncated at the end)."""
    for n in range(1, len(data) + 1):
        try:
            codecs.getincrementaldecoder('utf-8')().decode(data[:n], final=False)
        except UnicodeDecodeError:
            return n
    return None


def register_utf8():
    for i, (desc, data) in enumerate(UTF8_VECTORS, 1):
        valid = utf8_valid(data)
        cid = '6.%d' % i
        label = '%s (%s)' % (desc, 'valid' if valid else 'invalid')
        result = [('msg', OP_TEXT, data)] if valid else [('fail', 1007)]
        tail = [] if valid else [canary()]
        case(cid + '.1', label + ', single frame', run_script, [fr(OP_TEXT, data)] + tail, result)
        case(cid + '.2', label + ', single frame sent byte by byte', run_script,
             [fr(OP_TEXT, data)] + tail, result, chop=1)
        if len(data) > 1:
            case(cid + '.3', label + ', one fragment per byte', run_script,
                 fragments(OP_TEXT, data, [1] * (len(data) - 1)) + tail, result)
            mid = len(data) // 2
            case(cid + '.4', label + ', 2 fragments split in the middle, byte by byte',
                 run_script, fragments(OP_TEXT, data, [mid]) + tail, result, chop=1)
        if not valid:
            n = utf8_fail_prefix(data)
            if n is not None:
                # Fail fast: the message never ends, yet 1007 must arrive.
                case(cid + '.5', label + ', fail fast: bad prefix in a frame without FIN',
                     run_script, [fr(OP_TEXT, data[:n], fin=False)], [('fail', 1007)])
                case(cid + '.6', label + ', fail fast: bad byte mid-frame (rest never sent)',
                     run_script, [fr(OP_TEXT, data[:n] + b'x' * 16, fin=False)[:6 + n]],
                     [('fail', 1007)])


# ---- 7: closing handshake -----------------------------------------------------------------------

def register_close():
    hello = b'Hello World!'
    cl = fr(OP_CLOSE, close_payload(1000))
    scripted('7.1.1', 'echo, then close', [fr(OP_TEXT, hello), cl],
             [('msg', OP_TEXT, hello), ('close', 1000)])
    scripted('7.1.2', 'close twice: second is ignored', [cl, cl], [('close', 1000)])
    scripted('7.1.3', 'ping after close is not answered', [cl, fr(OP_PING, 'late')],
             [('close', 1000)])
    scripted('7.1.4', 'text after close is not echoed', [cl, fr(OP_TEXT, hello)],
             [('close', 1000)])
    scripted('7.1.5', 'fragment, close, final fragment: not echoed',
             [fr(OP_TEXT, 'frag1', fin=False), cl, fr(OP_CONT, 'frag2')], [('close', 1000)])
    big = text_payload(256 * KIB)
    scripted('7.1.6', '256 KiB text, ping, close: echo, pong, close',
             [fr(OP_TEXT, big), fr(OP_PING, 'p'), cl],
             [('msg', OP_TEXT, big), ('pong', b'p'), ('close', 1000)], chop_too=False)
    scripted('7.3.1', 'close without payload -> empty close (or 1000)', [fr(OP_CLOSE)],
             [('close', None)])
    scripted('7.3.2', 'close with 1-byte payload -> 1002', [fr(OP_CLOSE, b'\x03'), canary()],
             [('fail', 1002)])
    scripted('7.3.3', 'close 1000 without reason', [cl], [('close', 1000)])
    scripted('7.3.4', 'close 1000 with reason echoed',
             [fr(OP_CLOSE, close_payload(1000, b'Hello World!'))],
             [('close', 1000, b'Hello World!')])
    reason = ('*' * 121 + 'é').encode()       # 123 bytes, ending in a 2-byte character
    scripted('7.3.5', 'close 1000 with a 123-byte reason',
             [fr(OP_CLOSE, close_payload(1000, reason))], [('close', 1000, reason)])
    scripted('7.3.6', 'close with a 124-byte reason (payload 126) -> 1002',
             [fr(OP_CLOSE, close_payload(1000, b'r' * 124))], [('fail', 1002)])
    scripted('7.5.1', 'close reason with invalid UTF-8 -> 1007',
             [fr(OP_CLOSE, close_payload(1000, KOSME + H('ed a0 80') + b'edited'))],
             [('fail', 1007)])
    scripted('7.5.2', 'close reason truncated mid-character -> 1007',
             [fr(OP_CLOSE, close_payload(1000, KOSME[:-1]))], [('fail', 1007)], chop_too=False)
    valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
             3999, 4000, 4999]
    for i, code in enumerate(valid, 1):
        scripted('7.7.%d' % i, 'valid close code %d echoed' % code,
                 [fr(OP_CLOSE, close_payload(code))], [('close', code)], chop_too=False)
    invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
    for i, code in enumerate(invalid, 1):
        scripted('7.9.%d' % i, 'invalid close code %d -> 1002' % code,
                 [fr(OP_CLOSE, close_payload(code)), canary()], [('fail', 1002)],
                 chop_too=False)
    case('7.13.1', 'server closes TCP after the close handshake (client keeps it open)',
         run_script, [cl], [('close', 1000)])
    case('7.13.2', 'text, close, then client half-closes TCP: echo and close still arrive',
         close_half_closed)
    case('7.14.1', 'heartbeat pings, then server closes an idle connection with 1001',
         close_idle)


def close_idle(ctx):
    """Server-initiated close: heartbeat pings are answered for a while, then ignored; after
    connection_timeout without traffic the server closes with 1001 and, once our close reply
    arrives, closes TCP."""
    c = Client(ctx.port('idle'))
    try:
        for _ in range(3):
            ev = c.next_event(3.0)
            check(ev is not None and ev.opcode == OP_PING, 'expected a heartbeat ping, got %s'
                  % (ev.describe() if ev else 'EOF'))
            c.send(OP_PONG, ev.payload)
        start = time.monotonic()
        ev = c.next_event(4.0)
        while ev is not None and ev.opcode == OP_PING:      # not answered any more
            ev = c.next_event(4.0)
        check(ev is not None and ev.opcode == OP_CLOSE, 'expected close 1001, got %s'
              % (ev.describe() if ev else 'EOF'))
        check(close_code(ev.payload) == 1001, 'expected close 1001, got close %s'
              % close_code(ev.payload))
        ctx.note('closed %.1f s after the last pong' % (time.monotonic() - start))
        c.send(OP_CLOSE, ev.payload[:2])
        c.expect_eof()
    finally:
        c.close()


def close_half_closed(ctx):
    c = Client(ctx.port())
    try:
        c.send_raw(fr(OP_TEXT, 'last words') + fr(OP_CLOSE, close_payload(1001)))
        c.sock.shutdown(socket.SHUT_WR)
        c.expect_message(OP_TEXT, b'last words')
        c.expect_close(1001)
    finally:
        c.close()


# ---- 9: limits and performance ------------------------------------------------------------------

def perf_roundtrip(ctx, op, n, frag=None, chop=None, count=1):
    """Sends `count` messages of n bytes one after another, each checked before the next."""
    c = Client(ctx.port(), timeout=30.0)
    try:
        data = text_payload(n, n) if op == OP_TEXT else os.urandom(n)
        start = time.monotonic()
        for _ in range(count):
            if chop:
                c.send_raw(fr(op, data), chop)
            else:
                c.send_message(op, data, frag=frag)
            c.expect_message(op, data)
        elapsed = time.monotonic() - start
        c.finish()
        ctx.note('%.0f ms' % (elapsed * 1000))
    finally:
        c.close()


def register_limits():
    sizes = [64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB]
    frags = [64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB]

    def sz(n):
        return '%d %s' % ((n // MIB, 'MiB') if n >= MIB else (n // KIB, 'KiB'))

    for sec, op in ((1, OP_TEXT), (2, OP_BINARY)):
        for i, n in enumerate(sizes, 1):
            case('9.%d.%d' % (sec, i), '%s message of %s in one frame' % (OP_NAMES[op], sz(n)),
                 perf_roundtrip, op, n)
    for sec, op in ((3, OP_TEXT), (4, OP_BINARY)):
        for i, f in enumerate(frags, 1):
            n = MIB if f < KIB else 4 * MIB
            case('9.%d.%d' % (sec, i), '%s message of %s in fragments of %d B'
                 % (OP_NAMES[op], sz(n), f), perf_roundtrip, op, n, frag=f)
    for sec, op in ((5, OP_TEXT), (6, OP_BINARY)):
        for i, chop in enumerate([64, 512, 4 * KIB, 64 * KIB], 1):
            case('9.%d.%d' % (sec, i), '%s message of 1 MiB written in chops of %d B'
                 % (OP_NAMES[op], chop), perf_roundtrip, op, MIB, chop=chop)
    for sec, op in ((7, OP_TEXT), (8, OP_BINARY)):
        for i, n in enumerate([0, 256, 4 * KIB], 1):
            case('9.%d.%d' % (sec, i), '1000 %s messages of %d B, one at a time'
                 % (OP_NAMES[op], n), perf_roundtrip, op, n, count=1000)
    case('9.9.1', 'message over max_message_size (1 MiB server) -> 1009', run_script,
         [fr(OP_BINARY, b'\x00' * (MIB + 1)), canary()], [('fail', 1009)], server='small')
    case('9.9.2', 'fragmented message over max_message_size (1 MiB server) -> 1009', run_script,
         fragments(OP_BINARY, b'\x00' * (MIB + 100), [MIB // 2, MIB // 2]) + [canary()],
         [('fail', 1009)], server='small')
    case('9.9.3', 'frame announcing 2^62 bytes (1 MiB server) -> 1009 before any payload',
         run_script, [bytes([0x82, 0xFF]) + (1 << 62).to_bytes(8, 'big') + b'\0\0\0\0'],
         [('fail', 1009)], server='small')
    exact = b'\x5a' * MIB
    case('9.9.4', 'message of exactly max_message_size (1 MiB server) echoes', run_script,
         [fr(OP_BINARY, exact)], [('msg', OP_BINARY, exact)], server='small')
    case('9.9.5', 'fragmented message of exactly max_message_size echoes', run_script,
         fragments(OP_BINARY, exact, [1000, MIB - 2000]), [('msg', OP_BINARY, exact)],
         server='small')


# ---- 12 / 13: permessage-deflate ----------------------------------------------------------------

PMD_OFFER = 'permessage-deflate; client_max_window_bits'


def pmd_echo(ctx, offer, msgs, expect=None, frag=None, count=1):
    """Negotiates `offer`, checks the response parameters against `expect` (a dict of the
    window parameters that must appear, exactly), then sends each (opcode, payload) compressed
    `count` times and checks the (possibly compressed) echo."""
    c = Client(ctx.port(), '/echo', offer, timeout=15.0)
    try:
        check(c.pmd is not None, 'offer %r was declined' % offer)
        if expect is not None:
            got = {k: v for k, v in c.pmd.items() if k.endswith('window_bits')}
            check(got == expect, 'response window parameters %r, expected %r' % (got, expect))
        compressed = 0
        for _ in range(count):
            for op, data in msgs:
                c.send_message(op, data, compress=True, frag=frag)
                compressed += c.expect_message(op, data).compressed
        c.finish()
        ctx.note('%d/%d echoes compressed' % (compressed, count * len(msgs)))
    finally:
        c.close()


def pmd_declined(ctx, offer):
    """The offer must be declined: no extension in the 101, plain messages work, RSV1 fails."""
    c = Client(ctx.port(), '/echo', offer)
    try:
        check(c.pmd is None, 'invalid offer %r accepted: %r'
              % (offer, c.headers.get('sec-websocket-extensions')))
        c.send(OP_TEXT, 'plain')
        c.expect_message(OP_TEXT, b'plain')
        c.send(OP_TEXT, deflate(b'compressed'), rsv=RSV1)
        c.expect_fail(1002)
    finally:
        c.close()


def register_deflate():
    rnd = random.Random(12)
    sizes = [16, 64, 256, 1 * KIB, 4 * KIB, 16 * KIB, 64 * KIB, 128 * KIB]
    for i, n in enumerate(sizes, 1):
        case('12.1.%d' % i, 'compressed text messages of %d B (x10)' % n, pmd_echo, PMD_OFFER,
             [(OP_TEXT, text_payload(n, i))], count=10)
        case('12.2.%d' % i, 'compressed binary messages of %d B, compressible (x10)' % n,
             pmd_echo, PMD_OFFER, [(OP_BINARY, bytes(range(64)) * (n // 64) + b'\1' * (n % 64))],
             count=10)
        case('12.3.%d' % i, 'compressed binary messages of %d B, random (x10)' % n,
             pmd_echo, PMD_OFFER, [(OP_BINARY, rnd.randbytes(n))], count=10)
    for i, (n, f) in enumerate([(4 * KIB, 64), (64 * KIB, KIB), (128 * KIB, 4 * KIB),
                                (128 * KIB, 16 * KIB), (16, 1)], 1):
        case('12.4.%d' % i, 'compressed text of %d B in fragments of %d B (RSV1 on the first)'
             % (n, f), pmd_echo, PMD_OFFER, [(OP_TEXT, text_payload(n, n))], frag=f)
        case('12.5.%d' % i, 'compressed random binary of %d B in fragments of %d B' % (n, f),
             pmd_echo, PMD_OFFER, [(OP_BINARY, rnd.randbytes(n))], frag=f)
    # The repeated random blocks produce back-references 1500 and 5000 bytes long: decoding
    # them with the negotiated server_max_window_bits proves the server honoured the window.
    mixed = [(OP_TEXT, text_payload(n, n)) for n in (16, 300, 5000, 70000)]
    mixed += [(OP_BINARY, rnd.randbytes(1500) * 20), (OP_BINARY, rnd.randbytes(5000) * 4)]
    offers = [
        ('permessage-deflate', {}),
        ('permessage-deflate; client_no_context_takeover', {}),
        ('permessage-deflate; server_no_context_takeover', {}),
        ('permessage-deflate; client_max_window_bits', {}),
        ('permessage-deflate; client_no_context_takeover; server_no_context_takeover; '
         'client_max_window_bits=10; server_max_window_bits=12',
         {'client_max_window_bits': 10, 'server_max_window_bits': 12}),
        ('permessage-deflate; client_max_window_bits="11"', {'client_max_window_bits': 11}),
        ('x-webkit-deflate-frame, permessage-deflate', {}),
        ('permessage-deflate; server_max_window_bits=8, permessage-deflate; '
         'server_max_window_bits=10', {'server_max_window_bits': 10}),
        ('permessage-deflate; foo, permessage-deflate', {}),
    ]
    offers += [('permessage-deflate; server_max_window_bits=%d' % w,
                {'server_max_window_bits': w}) for w in range(9, 16)]
    offers += [('permessage-deflate; client_max_window_bits=%d' % w,
                {'client_max_window_bits': w}) for w in (9, 12, 15)]
    for i, (offer, expect) in enumerate(offers, 1):
        case('13.1.%d' % i, 'offer "%s": accepted, messages round-trip' % offer, pmd_echo,
             offer, mixed, expect)
    declined = [
        'permessage-deflate; server_max_window_bits=8',   # valid, but zlib cannot honour it
        'permessage-deflate; server_max_window_bits=16',
        'permessage-deflate; server_max_window_bits=7',
        'permessage-deflate; server_max_window_bits=0',
        'permessage-deflate; server_max_window_bits=010',
        'permessage-deflate; server_max_window_bits=abc',
        'permessage-deflate; server_max_window_bits',
        'permessage-deflate; client_max_window_bits=16',
        'permessage-deflate; client_max_window_bits=7',
        'permessage-deflate; client_no_context_takeover=1',
        'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
        'permessage-deflate; unknown_parameter',
        'permessage-deflate; client_max_window_bits=10; client_max_window_bits=11',
        'permessage-deflate-x',
        'deflate-frame',
        'permessage-deflate; server_max_window_bits="1 0"',
    ]
    for i, offer in enumerate(declined, 1):
        case('13.2.%d' % i, 'offer "%s" declined; RSV1 then -> 1002' % offer, pmd_declined,
             offer)
    hello = text_payload(500)
    comp = deflate(hello)
    half = len(comp) // 2
    bad_utf8 = deflate(KOSME + H('ed a0 80') + b'edited')
    split = [fr(OP_TEXT, comp[:half], fin=False, rsv=RSV1), fr(OP_PING, 'mid'),
             fr(OP_CONT, comp[half:])]
    rows = [
        ('13.3.1', 'RSV1 on a continuation frame -> 1002',
         [fr(OP_TEXT, comp[:half], fin=False, rsv=RSV1), fr(OP_CONT, comp[half:], rsv=RSV1),
          canary()], [('fail', 1002)], None),
        ('13.3.2', 'RSV1 on a ping -> 1002', [fr(OP_PING, 'p', rsv=RSV1), canary()],
         [('fail', 1002)], None),
        ('13.3.3', 'RSV1 on a close -> 1002', [fr(OP_CLOSE, close_payload(1000), rsv=RSV1)],
         [('fail', 1002)], None),
        ('13.3.4', 'invalid compressed data (reserved block type) -> 1007',
         [fr(OP_BINARY, b'\x07\xff\xff\xff', rsv=RSV1), canary()], [('fail', 1007)], None),
        ('13.3.5', 'invalid compressed data (stored block length mismatch) -> 1007',
         [fr(OP_TEXT, b'\x00\x05\x00\x00\x00hello', rsv=RSV1), canary()], [('fail', 1007)],
         None),
        ('13.3.6', 'compressed text that inflates to invalid UTF-8 -> 1007',
         [fr(OP_TEXT, bad_utf8, rsv=RSV1), canary()], [('fail', 1007)], None),
        ('13.3.7', 'compressed message in frames, a ping between', split,
         [('pong', b'mid'), ('msg', OP_TEXT, hello)], None),
        ('13.3.7b', 'compressed message in frames, a ping between, byte by byte', split,
         [('pong', b'mid'), ('msg', OP_TEXT, hello)], 1),
        ('13.3.8', 'compressed empty message (single 0x00 byte)',
         [fr(OP_TEXT, b'\x00', rsv=RSV1)], [('msg', OP_TEXT, b'')], None),
        ('13.3.9', 'compressed empty message (no payload at all)',
         [fr(OP_BINARY, b'', rsv=RSV1)], [('msg', OP_BINARY, b'')], None),
        ('13.3.10', 'uncompressed and compressed messages mixed on one connection',
         [fr(OP_TEXT, hello), fr(OP_TEXT, comp, rsv=RSV1), fr(OP_BINARY, b'\x01\x02')],
         [('msg', OP_TEXT, hello), ('msg', OP_TEXT, hello), ('msg', OP_BINARY, b'\x01\x02')],
         None),
        ('13.3.11', 'final deflate block (BFINAL) is accepted',
         [fr(OP_TEXT, zlib_final(hello), rsv=RSV1)], [('msg', OP_TEXT, hello)], None),
    ]
    for cid, desc, send, expect, chop in rows:
        case(cid, desc, run_script, send, expect, chop=chop, extensions=PMD_OFFER)
    case('13.4.1', 'decompression bomb: 100 MB of zeros (1 MiB server) -> 1009', pmd_bomb)
    exact = text_payload(MIB, 3)
    case('13.4.2', 'compressed message inflating to exactly max_message_size echoes',
         run_script, [fr(OP_TEXT, deflate(exact), rsv=RSV1)], [('msg', OP_TEXT, exact)],
         extensions=PMD_OFFER, server='small')
    case('13.4.3', 'compressed message inflating to max_message_size + 1 -> 1009', run_script,
         [fr(OP_TEXT, deflate(exact + b'!'), rsv=RSV1), canary()], [('fail', 1009)],
         extensions=PMD_OFFER, server='small')


def zlib_final(data):
    """A message compressed with Z_FINISH (a BFINAL block), as some clients send."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH)


def pmd_bomb(ctx):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MIB)
    comp = b''.join(c.compress(chunk) for _ in range(100)) + c.flush(zlib.Z_SYNC_FLUSH)
    comp = comp[:-4]
    ctx.note('%d KiB on the wire' % (len(comp) // KIB))
    start = time.monotonic()
    run_script(ctx, [fr(OP_BINARY, comp, rsv=RSV1), canary()], [('fail', 1009)],
               extensions=PMD_OFFER, server='small')
    ctx.note('failed after %.0f ms' % ((time.monotonic() - start) * 1000))


def no_leaks(ctx):
    """Every connection of every case is gone once the lingering closes (2 s) have ended."""
    for name, srv in ctx.servers.items():
        deadline = time.monotonic() + 6
        while (srv.gauge('wshub_sockets'), srv.gauge('wshub_connections')) != (0, 0):
            check(time.monotonic() < deadline, 'server %s still has %d sockets, %d connections'
                  % (name, srv.gauge('wshub_sockets'), srv.gauge('wshub_connections')))
            time.sleep(0.2)


# ---- Driver -------------------------------------------------------------------------------------

class Context:
    """What a case can reach: the servers (started lazily) and a note for its result line."""

    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.servers = {}
        self.notes = []

    def server(self, name='main'):
        if name not in self.servers:
            self.servers[name] = Server(self.args.wshubd, self.args.plugin_dir, self.workdir,
                                        name, SERVERS[name])
        return self.servers[name]

    def port(self, name='main'):
        return self.server(name).port

    def note(self, text):
        self.notes.append(text)

    def stop_all(self):
        """Stops every server; returns a list of problems (non-zero exits)."""
        problems = []
        for name, srv in self.servers.items():
            rc = srv.stop()
            if rc != 0:
                problems.append('server %s exited %s on SIGTERM: %s' % (name, rc,
                                                                        srv.log_tail()))
        return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--wshubd', required=True)
    ap.add_argument('--plugin-dir', default=os.environ.get('WSHUB_PLUGIN_DIR'))
    ap.add_argument('--only', action='append', default=[],
                    help='run only cases whose id starts with this (repeatable)')
    args = ap.parse_args()
    # meson's timeout sends SIGTERM: unwind through the finally blocks that stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    for register in (register_handshake, register_framing, register_pings, register_rsv,
                     register_opcodes, register_fragmentation, register_utf8, register_close,
                     register_limits, register_deflate):
        register()
    case('Z.1', 'no sockets or connections left open on any server', no_leaks)
    ids = [cid for cid, _, _ in CASES]
    assert len(ids) == len(set(ids)), 'duplicate case ids'

    passed = failed = 0
    failures = []
    with tempfile.TemporaryDirectory(prefix='wshub-conformance-') as workdir:
        ctx = Context(args, workdir)
        try:
            try:
                ctx.server('main')
            except RuntimeError as e:
                print('FAIL setup: %s' % e)
                print('0 passed, 1 failed')
                return 2
            for cid, desc, fn in CASES:
                if args.only and not any(cid.startswith(p) for p in args.only):
                    continue
                ctx.notes = []
                start = time.monotonic()
                try:
                    fn(ctx)
                    why = None
                except CaseFailure as e:
                    why = str(e)
                except Exception as e:      # a socket error or a bug in the case: report it
                    why = '%s: %s' % (type(e).__name__, e)
                dead = [n for n, s in ctx.servers.items() if s.proc.poll() is not None]
                if dead and why is None:
                    why = 'server %s died' % ', '.join(dead)
                note = ' (%s)' % ', '.join(ctx.notes) if ctx.notes else ''
                if time.monotonic() - start > 1.0 and not ctx.notes:
                    note = ' (%.1f s)' % (time.monotonic() - start)
                if why is None:
                    passed += 1
                    print('ok %s %s%s' % (cid, desc, note), flush=True)
                else:
                    failed += 1
                    failures.append(cid)
                    print('FAIL %s %s: %s' % (cid, desc, why), flush=True)
                for name in dead:
                    print('  server %s died: %s' % (name, ctx.servers[name].log_tail()))
                    del ctx.servers[name]
        finally:
            for problem in ctx.stop_all():
                failed += 1
                print('FAIL shutdown: %s' % problem)
    if failures:
        print('failed cases: %s' % ' '.join(failures))
    print('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
