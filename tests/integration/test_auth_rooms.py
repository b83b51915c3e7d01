#!/usr/bin/python3
"""Integration tests: a real wshubd with the auth_jwt and rooms plugins.

    /usr/bin/python3 test_auth_rooms.py --wshubd BUILD/core/wshubd --plugin-dir BUILD/plugins \
        --token-tool BUILD/plugins/auth_jwt/wshub-token [-k SUBSTRING]

These are the acceptance criteria of the authentication issue (401 for a missing, expired,
forged or unsigned token; identity in the welcome; the three token sources; the failure
metrics; auth.refresh; expiry with close code 4001) and of the tenancy + rooms issue (tenants
never see each other's rooms, members or messages; the permission matrix; bans; presence;
temporary, private and protected rooms; subtree sends; per-tenant connection limits; a fan-out
to about 200 connections).

Tokens are minted here with the standard library (HMAC-SHA-256 over base64url JSON), so every
claim and header can be chosen, including an `alg: none` token; the wshub-token tool is used
once to check that what it prints is accepted.

Each test starts its own server (harness.Server, free loopback ports) and stops it on exit.
Output: `ok NAME` or `FAIL NAME: why` per test, then exactly `N passed, M failed`; exit 1 on any
failure. Every wait is bounded; "nothing arrives" is checked by reading for a bounded time
after the positive counterpart (the message did arrive where it should) was seen.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import base_config, check, eq, metric, run_tests  # noqa: E402

try:
    import websockets
    import websockets.exceptions as wsx
except ImportError:  # pragma: no cover - a clear message beats a traceback in the test log
    print("FAIL setup: python3-websockets is missing (run with /usr/bin/python3)")
    print("0 passed, 1 failed")
    sys.exit(1)

TEST_TIMEOUT = 120.0  # upper bound for one test
IO_TIMEOUT = 10.0     # upper bound for one receive / handshake / request
QUIET = 0.5           # how long "nothing else arrives" is watched
SECRET = "wshub-integration-secret-0123456789abcdef"   # >= 32 bytes: no short-secret warning
OTHER_SECRET = "another-secret-nobody-configured-0123456789"

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


async def apoll(fn, what, timeout=IO_TIMEOUT, interval=0.05):
    """Awaits fn() (a coroutine function) until it returns a true value; fails at the bound."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


# ------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims, secret=SECRET, header=None):
    """An HS256 JWT over compact JSON; `header` replaces the default {"alg":"HS256","typ":"JWT"}.
    With alg "none" the signature part is empty, as RFC 7519 §6.1 writes an unsecured JWT."""
    hdr = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    signing_input = "%s.%s" % (b64url(json.dumps(hdr, separators=(",", ":"))),
                               b64url(json.dumps(claims, separators=(",", ":"))))
    if hdr.get("alg") == "none":
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def token(tenant, user, ttl=3600, secret=SECRET, **extra):
    """A token for (tenant, user) valid for `ttl` seconds (None: no exp)."""
    now = int(time.time())
    claims = {"tenant_id": tenant, "sub": user, "iat": now}
    if ttl is not None:
        claims["exp"] = now + ttl
    claims.update(extra)
    return mint(claims, secret)


def auth_rooms_config(auth=None, rooms=None, tenants=None, **server):
    """base_config with auth_jwt (require_auth, the HS256 secret, leeway 0) and rooms (cheap
    password hashing for tests) loaded; `auth`/`rooms` entries override plugin options."""
    cfg = base_config(**server)
    a = {"require_auth": True, "algorithms": ["HS256"], "secret": SECRET, "leeway": "0s"}
    a.update(auth or {})
    r = {"pbkdf2_iterations": 1000, "password_retry_delay": "2s"}
    r.update(rooms or {})
    cfg["plugins"] = [{"name": "auth_jwt", "config": a}, {"name": "rooms", "config": r}]
    if tenants is not None:
        cfg["tenants"] = tenants
    return cfg


# ------------------------------------------------------------------------------------------
# Clients
# ------------------------------------------------------------------------------------------

def connect(url, **kw):
    """websockets.connect with test defaults: no client pings, no size limit, bounded
    handshake and close."""
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", IO_TIMEOUT)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(url, **kw)


class Client:
    """One JSON-protocol connection. request() sends with a fresh id and returns the ack/error
    carrying that id; any other message read meanwhile (server events) is kept in `pending`
    for event()/quiet()."""

    def __init__(self, ws, welcome, name):
        self.ws = ws
        self.welcome = welcome
        self.name = name
        self.pending = []
        self.next_id = 1

    @classmethod
    async def open(cls, srv, tok=None, name=None, path="/ws", **kw):
        """Connects with `tok` in the Authorization header; returns the client after its
        welcome."""
        if tok is not None:
            kw.setdefault("extra_headers", {"Authorization": "Bearer " + tok})
        ws = await connect(srv.url(path), **kw)
        try:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), IO_TIMEOUT))
            eq(welcome.get("type"), "welcome", "first message type")
        except BaseException:
            await ws.close()
            raise
        return cls(ws, welcome, name or welcome.get("user_id"))

    async def close(self):
        await self.ws.close()

    async def recv_any(self, timeout=IO_TIMEOUT):
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        check(isinstance(msg, str), "%s: binary message on the JSON path" % self.name)
        return json.loads(msg)

    async def request(self, mtype, timeout=IO_TIMEOUT, **fields):
        rid = self.next_id
        self.next_id += 1
        req = {"type": mtype, "id": rid}
        req.update(fields)
        await self.ws.send(json.dumps(req))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            check(left > 0, "%s: no answer to %s within %.0fs" % (self.name, mtype, timeout))
            try:
                msg = await self.recv_any(left)
            except asyncio.TimeoutError:
                raise AssertionError("%s: no answer to %s within %.0fs"
                                     % (self.name, mtype, timeout))
            if msg.get("id") == rid and msg.get("type") in ("ack", "error"):
                return msg
            self.pending.append(msg)

    async def ok(self, mtype, **fields):
        """The request must be acked; returns the ack."""
        r = await self.request(mtype, **fields)
        check(r.get("type") == "ack", "%s: %s %s answered %s" % (self.name, mtype,
                                                                 json.dumps(fields), r))
        return r

    async def err(self, mtype, code, **fields):
        """The request must be refused with `code`; returns the error."""
        r = await self.request(mtype, **fields)
        check(r.get("type") == "error" and r.get("code") == code,
              "%s: %s %s answered %s, want error %s" % (self.name, mtype, json.dumps(fields),
                                                        r, code))
        check(isinstance(r.get("message"), str), "error without message: %r" % r)
        return r

    async def event(self, etype, timeout=IO_TIMEOUT, **match):
        """The next (kept or new) message of type `etype` whose fields equal `match`."""
        def fits(m):
            return m.get("type") == etype and all(m.get(k) == v for k, v in match.items())
        for i, m in enumerate(self.pending):
            if fits(m):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError()
                m = await self.recv_any(left)
            except asyncio.TimeoutError:
                raise AssertionError("%s: no %s %r within %.0fs (kept: %r)"
                                     % (self.name, etype, match, timeout, self.pending[-5:]))
            if fits(m):
                return m
            self.pending.append(m)

    async def quiet(self, pred=lambda m: True, duration=QUIET, what="message"):
        """Nothing matching `pred` is kept or arrives within `duration` seconds."""
        bad = [m for m in self.pending if pred(m)]
        check(not bad, "%s: unexpected %s %r" % (self.name, what, bad[:3]))
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                m = await self.recv_any(left)
            except asyncio.TimeoutError:
                return
            check(not pred(m), "%s: unexpected %s %r" % (self.name, what, m))
            self.pending.append(m)

    def drop_pending(self):
        self.pending.clear()


class clients:
    """`async with clients() as cs`: closes every Client added with cs.add() on exit."""

    def __init__(self):
        self.items = []

    def add(self, c):
        self.items.append(c)
        return c

    async def open(self, srv, tenant, user, **kw):
        return self.add(await Client.open(srv, token(tenant, user), **kw))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(c.close() for c in self.items), return_exceptions=True)
        return False


async def raw_upgrade(host, port, path="/ws", extra=(), timeout=IO_TIMEOUT):
    """Sends an upgrade request by hand and returns (status, headers dict (lower-case names),
    body text). For a 101 the body is empty and the connection is dropped."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                 "Connection: Upgrade",
                 "Sec-WebSocket-Key: %s" % base64.b64encode(os.urandom(16)).decode(),
                 "Sec-WebSocket-Version: 13"]
        lines.extend(extra)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await asyncio.wait_for(writer.drain(), timeout)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)).decode("latin-1")
        status = int(head.split("\r\n", 1)[0].split()[1])
        headers = {}
        for line in head.split("\r\n")[1:]:
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        body = b""
        n = int(headers.get("content-length", "0") or 0)
        if status != 101 and n > 0:
            body = await asyncio.wait_for(reader.readexactly(n), timeout)
        return status, headers, head, body.decode("utf-8", "replace")
    finally:
        writer.close()


async def expect_refused(srv, status, what, **kw):
    """A websockets upgrade (kw as for Client.open) must be refused with HTTP `status`."""
    try:
        c = await Client.open(srv, **kw)
    except wsx.InvalidStatusCode as e:
        eq(e.status_code, status, "HTTP status of %s" % what)
        return
    await c.close()
    raise AssertionError("%s: upgrade succeeded, want HTTP %d" % (what, status))


def members_of(ack):
    """{user_id: connections} of a room.join / room.members ack, checking its shape."""
    ms = ack.get("members")
    check(isinstance(ms, list), "no members list in %r" % ack)
    out = {}
    for m in ms:
        check(m.get("user_id") not in out, "user %r listed twice: %r" % (m.get("user_id"), ms))
        out[m.get("user_id")] = m.get("connections")
    eq(ack.get("count"), len(ms), "members count")
    return out


# ------------------------------------------------------------------------------------------
# Authentication
# ------------------------------------------------------------------------------------------

@test
async def auth_refused_upgrades(ctx):
    """No token, expired, another secret, alg none, garbage: 401 with the documented body,
    never echoing the token, counted by reason; a good token then still connects."""
    with ctx.server(auth_rooms_config(max_header_size="64KiB")) as srv:
        now = int(time.time())
        expired = mint({"tenant_id": "acme", "sub": "alice", "iat": now - 120, "exp": now - 60})
        forged = token("acme", "alice", secret=OTHER_SECRET)
        unsigned = mint({"tenant_id": "acme", "sub": "alice", "exp": now + 600},
                        header={"alg": "none", "typ": "JWT"})
        # The same claims under alg none with a (meaningless) HS256 signature attached.
        unsigned_sig = mint({"tenant_id": "acme", "sub": "alice", "exp": now + 600},
                            header={"alg": "none", "typ": "JWT"}) + \
            forged.rsplit(".", 1)[1]
        cases = [
            ("no token", [], "authentication required"),
            ("expired", ["Authorization: Bearer " + expired], "token expired"),
            ("other secret", ["Authorization: Bearer " + forged], "invalid token"),
            ("alg none", ["Authorization: Bearer " + unsigned], "token algorithm not accepted"),
            ("alg none + signature", ["Authorization: Bearer " + unsigned_sig],
             "token algorithm not accepted"),
            ("not a jwt", ["Authorization: Bearer abc.def"], "malformed token"),
            ("over 8 KiB", ["Authorization: Bearer " + token("acme", "alice",
                                                              pad="x" * 9000)],
             "malformed token"),
        ]
        for what, extra, body in cases:
            status, _, head, text = await raw_upgrade(srv.ws_host, srv.ws_port, extra=extra)
            eq(status, 401, "HTTP status for %s" % what)
            eq(text.strip(), body, "401 body for %s" % what)
            for line in extra:
                tok = line.split()[-1]
                check(tok not in head and tok not in text, "%s: the token is echoed" % what)
            check("www-authenticate" not in head.lower(), "%s: WWW-Authenticate sent" % what)
        # The same refusals through a real client library (query and subprotocol sources too).
        await expect_refused(srv, 401, "no token (websockets)")
        await expect_refused(srv, 401, "expired token in ?token=", path="/ws?token=" + expired)
        await expect_refused(srv, 401, "forged token as subprotocol",
                             subprotocols=["wshub.v1", "bearer." + forged])
        await expect_refused(srv, 401, "alg none token in header", tok=unsigned)
        await expect_refused(srv, 401, "bad percent-escape in ?token=",
                             path="/ws?token=" + token("acme", "alice")[:-2] + "%zz")
        m = srv.metrics()
        want = {"missing": 2, "expired": 2, "bad_signature": 2, "bad_algorithm": 3,
                "malformed": 3, "not_yet_valid": 0, "bad_claims": 0, "unknown_kid": 0}
        for reason, n in want.items():
            key = ("wshub_auth_failures_total", {"reason": reason})
            check(metric(m, *key, default=None) is not None,
                  "wshub_auth_failures_total{reason=%s} is not exported" % reason)
            eq(metric(m, *key), float(n), "wshub_auth_failures_total{reason=%s}" % reason)
        eq(metric(m, "wshub_handshake_failures_total", {"reason": "unauthorized"}), 12.0,
           "wshub_handshake_failures_total{reason=unauthorized}")
        # Refusals leave the server healthy: a valid token connects.
        c = await Client.open(srv, token("acme", "alice"))
        await c.close()


@test
async def auth_valid_token_identity(ctx):
    """A valid HS256 token with tenant_id and sub: 101 and a welcome with that identity."""
    with ctx.server(auth_rooms_config()) as srv:
        c = await Client.open(srv, token("acme", "alice", roles=["dev"], meta={"plan": "pro"}))
        try:
            eq(c.welcome.get("tenant_id"), "acme", "welcome tenant_id")
            eq(c.welcome.get("user_id"), "alice", "welcome user_id")
            await c.ws.send('{"type":"ping","id":1}')
            eq((await c.recv_any()).get("type"), "pong", "answer to ping")
        finally:
            await c.close()
        # Integer tenant and user claims are written in decimal.
        c = await Client.open(srv, mint({"tenant_id": 42, "sub": 7,
                                         "exp": int(time.time()) + 600}))
        await c.close()
        eq((c.welcome.get("tenant_id"), c.welcome.get("user_id")), ("42", "7"),
           "identity from integer claims")
        # require_auth: a valid token without a tenant is refused.
        await expect_refused(srv, 401, "token without tenant",
                             tok=mint({"sub": "alice", "exp": int(time.time()) + 600}))
        m = srv.metrics()
        eq(metric(m, "wshub_auth_success_total", {"source": "header"}), 2.0,
           "wshub_auth_success_total{source=header}")
        eq(metric(m, "wshub_auth_failures_total", {"reason": "bad_claims"}), 1.0,
           "wshub_auth_failures_total{reason=bad_claims}")


@test
async def auth_token_sources(ctx):
    """The token via ?token= (also percent-encoded), via Authorization, and via a
    `bearer.<jwt>` subprotocol offered with wshub.v1: the server answers wshub.v1, never the
    token."""
    with ctx.server(auth_rooms_config()) as srv:
        t_query = token("acme", "q-user")
        c = await Client.open(srv, path="/ws?token=" + t_query)
        await c.close()
        eq((c.welcome["tenant_id"], c.welcome["user_id"]), ("acme", "q-user"), "?token= identity")
        c = await Client.open(srv, path="/ws?x=1&token=" + t_query.replace(".", "%2E"))
        await c.close()
        eq(c.welcome["user_id"], "q-user", "percent-encoded ?token= identity")

        c = await Client.open(srv, token("globex", "h-user"))
        await c.close()
        eq((c.welcome["tenant_id"], c.welcome["user_id"]), ("globex", "h-user"),
           "Authorization identity")

        t_sub = token("acme", "s-user")
        for offer in (["wshub.v1", "bearer." + t_sub], ["bearer." + t_sub, "wshub.v1"]):
            c = await Client.open(srv, subprotocols=offer)
            await c.close()
            eq(c.ws.subprotocol, "wshub.v1", "selected subprotocol for offer %r" % offer[:1])
            eq((c.welcome["tenant_id"], c.welcome["user_id"]), ("acme", "s-user"),
               "subprotocol identity")
        # On the wire: exactly one protocol answered, and the token appears nowhere.
        status, headers, head, _ = await raw_upgrade(
            srv.ws_host, srv.ws_port,
            extra=["Sec-WebSocket-Protocol: bearer.%s, wshub.v1" % t_sub])
        eq(status, 101, "raw subprotocol upgrade")
        eq(headers.get("sec-websocket-protocol"), "wshub.v1", "Sec-WebSocket-Protocol answered")
        check(t_sub not in head and "bearer" not in head, "the token is echoed: %r" % head)
        # wshub.v1 is preferred over another protocol offered first; without it the first
        # other entry is answered.
        for offer, want in (("chat, bearer.%s, wshub.v1" % t_sub, "wshub.v1"),
                            ("bearer.%s, chat, mqtt" % t_sub, "chat")):
            status, headers, head, _ = await raw_upgrade(
                srv.ws_host, srv.ws_port, extra=["Sec-WebSocket-Protocol: " + offer])
            eq(status, 101, "raw upgrade offering %r" % offer[:12])
            eq(headers.get("sec-websocket-protocol"), want, "protocol answered to %r"
               % offer[:12])
            check(t_sub not in head, "the token is echoed: %r" % head)

        # Authorization wins over ?token= (the first source present is used).
        c = await Client.open(srv, token("acme", "header-wins"),
                              path="/ws?token=" + token("acme", "query-loses"))
        await c.close()
        eq(c.welcome["user_id"], "header-wins", "Authorization takes precedence")

        m = srv.metrics()
        eq(metric(m, "wshub_auth_success_total", {"source": "query"}), 2.0, "success{query}")
        eq(metric(m, "wshub_auth_success_total", {"source": "header"}), 2.0, "success{header}")
        eq(metric(m, "wshub_auth_success_total", {"source": "subprotocol"}), 5.0,
           "success{subprotocol}")


@test
async def auth_token_tool(ctx):
    """wshub-token prints a token the server accepts, with the identity given."""
    p = subprocess.run([ctx.token_tool, "--secret", SECRET, "--tenant", "acme", "--user",
                        "tool-user", "--roles", "admin,dev", "--ttl", "600"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "wshub-token exit code (stderr %r)" % p.stderr)
    tok = p.stdout.strip()
    eq(tok.count("."), 2, "wshub-token output shape")
    hdr = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
    eq(hdr.get("alg"), "HS256", "wshub-token alg")
    with ctx.server(auth_rooms_config()) as srv:
        c = await Client.open(srv, tok)
        try:
            eq((c.welcome["tenant_id"], c.welcome["user_id"]), ("acme", "tool-user"),
               "identity of the wshub-token token")
            # --roles admin: a tenant admin, owner of every room of its tenant.
            r = await c.ok("room.create", room="tool-room", room_type="public")
            eq(r.get("role"), "owner", "role of the creator")
        finally:
            await c.close()
        # The tool's token is rejected by a server with another secret.
    with ctx.server(auth_rooms_config(auth={"secret": OTHER_SECRET})) as srv:
        await expect_refused(srv, 401, "wshub-token token, other secret", tok=tok)
    p = subprocess.run([ctx.token_tool, "--tenant", "acme"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    eq(p.returncode, 2, "wshub-token usage error exit code")


@test
async def auth_refresh(ctx):
    """auth.refresh: another user's (or tenant's) token -> forbidden, a refused token ->
    unauthorized, no token -> invalid, the same user's -> ack with the new expiry."""
    with ctx.server(auth_rooms_config()) as srv:
        c = await Client.open(srv, token("acme", "alice", ttl=600))
        try:
            await c.err("auth.refresh", "forbidden", token=token("acme", "bob"))
            await c.err("auth.refresh", "forbidden", token=token("globex", "alice"))
            e = await c.err("auth.refresh", "unauthorized",
                            token=token("acme", "alice", secret=OTHER_SECRET))
            check("bad_signature" in e["message"], "unauthorized message %r" % e["message"])
            await c.err("auth.refresh", "invalid")
            await c.err("auth.refresh", "invalid", token=5)
            fresh = token("acme", "alice", ttl=7200)
            exp = json.loads(base64.urlsafe_b64decode(fresh.split(".")[1] + "=="))["exp"]
            r = await c.ok("auth.refresh", token=fresh)
            eq(r.get("expires_at"), exp * 1000, "expires_at of the refresh")
            r = await c.ok("auth.refresh", token=token("acme", "alice", ttl=None))
            check("expires_at" in r and r["expires_at"] is None,
                  "expires_at for a token without exp: %r" % r)
        finally:
            await c.close()
        m = srv.metrics()
        eq(metric(m, "wshub_auth_refresh_total", {"result": "ok"}), 2.0, "refresh{ok}")
        eq(metric(m, "wshub_auth_refresh_total", {"result": "forbidden"}), 2.0,
           "refresh{forbidden}")
        eq(metric(m, "wshub_auth_refresh_total", {"result": "invalid"}), 2.0, "refresh{invalid}")


@test
async def auth_optional_anonymous(ctx):
    """require_auth false: no token -> anonymous (public, ""), which cannot refresh or create
    rooms; a bad token is still refused, a good one still gives its identity."""
    with ctx.server(auth_rooms_config(auth={"require_auth": False})) as srv:
        async with clients() as cs:
            anon = cs.add(await Client.open(srv))
            eq((anon.welcome["tenant_id"], anon.welcome["user_id"]), ("public", ""),
               "anonymous identity")
            await anon.err("auth.refresh", "forbidden", token=token("public", ""))
            await anon.err("room.create", "forbidden", room="r", room_type="public")
            await expect_refused(srv, 401, "bad token with require_auth false",
                                 tok=token("acme", "alice", secret=OTHER_SECRET))
            c = await cs.open(srv, "acme", "alice")
            eq((c.welcome["tenant_id"], c.welcome["user_id"]), ("acme", "alice"),
               "identity with require_auth false")
            # A token without a tenant then gets the tenant public.
            c = cs.add(await Client.open(srv, mint({"sub": "pub-user",
                                                     "exp": int(time.time()) + 600})))
            eq((c.welcome["tenant_id"], c.welcome["user_id"]), ("public", "pub-user"),
               "token without tenant, require_auth false")
            # ...and shares rooms with the anonymous connections of that tenant.
            await c.ok("room.create", room="pub", room_type="public")
            await anon.ok("room.join", room="pub")
            await c.event("room.joined", room="pub", user_id="")
        m = srv.metrics()
        eq(metric(m, "wshub_auth_success_total", {"source": "anonymous"}), 1.0,
           "success{anonymous}")


@test
async def auth_expiry_closes_4001(ctx):
    """A token that expires in ~2 s (leeway 0): error token_expired, then close 4001; a
    connection that refreshed in time stays open."""
    with ctx.server(auth_rooms_config(auth={"leeway": "0s"})) as srv:
        short = token("acme", "alice", ttl=2)
        doomed = await Client.open(srv, short)
        saved = await Client.open(srv, token("acme", "bob", ttl=2))
        forever = await Client.open(srv, token("acme", "carol", ttl=2))
        try:
            await saved.ok("auth.refresh", token=token("acme", "bob", ttl=600))
            r = await forever.ok("auth.refresh", token=token("acme", "carol", ttl=None))
            eq(r.get("expires_at"), None, "expires_at of a token without exp")
            # An expired token is not a refresh.
            e = await forever.err("auth.refresh", "unauthorized", token=mint(
                {"tenant_id": "acme", "sub": "carol", "exp": int(time.time()) - 5}))
            check("expired" in e["message"], "refusal message %r" % e["message"])
            await doomed.ok("room.create", room="lobby", room_type="public")
            await saved.ok("room.join", room="lobby")
            deadline = time.monotonic() + 6.0
            got_error = None
            while True:
                left = deadline - time.monotonic()
                check(left > 0, "no close within 6 s of a 2 s token (error seen: %r)"
                      % got_error)
                try:
                    m = await doomed.recv_any(left)
                except wsx.ConnectionClosed:
                    break
                except asyncio.TimeoutError:
                    continue
                if m.get("type") == "error":
                    eq(m.get("code"), "token_expired", "error code before the close")
                    check(isinstance(m.get("message"), str) and short not in m["message"],
                          "token_expired message %r" % m.get("message"))
                    got_error = m
            check(got_error is not None, "closed without a token_expired error first")
            eq(doomed.ws.close_code, 4001, "close code of the expired connection")
            eq(doomed.ws.close_reason, "token expired", "close reason")
            # The refreshed connection outlived the old expiry (ping answers pong, not ack).
            await saved.ws.send('{"type":"ping","id":"alive"}')
            p = await saved.event("pong", id="alive")
            eq(p.get("id"), "alive", "pong of the refreshed connection")
            check(saved.ws.close_code is None, "refreshed connection closed: %r"
                  % saved.ws.close_code)
            # The expired connection left its room like any closed one.
            left = await saved.event("room.left", room="lobby", user_id="alice")
            eq(left.get("reason"), "disconnect", "room.left reason after the 4001 close")
            await forever.ws.send('{"type":"ping","id":"forever"}')
            await forever.event("pong", id="forever")
        finally:
            await doomed.close()
            await saved.close()
            await forever.close()
        m = srv.metrics()
        eq(metric(m, "wshub_auth_expired_total"), 1.0, "wshub_auth_expired_total")


# ------------------------------------------------------------------------------------------
# Tenancy and rooms
# ------------------------------------------------------------------------------------------

def is_room_traffic(m):
    return str(m.get("type", "")).startswith("room.")


@test
async def tenants_isolated_rooms(ctx):
    """Tenants A and B both have "lobby" (with a user "alice" in each): sends, joins and
    member lists never cross tenants."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            a1 = await cs.open(srv, "tenant-a", "alice")
            a2 = await cs.open(srv, "tenant-a", "bob")
            b1 = await cs.open(srv, "tenant-b", "alice")
            b2 = await cs.open(srv, "tenant-b", "carol")

            await a1.ok("room.create", room="lobby", room_type="public")
            await a2.ok("room.join", room="lobby")
            await a1.event("room.joined", room="lobby", user_id="bob")
            # B's lobby is another room: create succeeds (not `exists`), B's alice owns it.
            r = await b1.ok("room.create", room="lobby", room_type="public")
            eq(members_of(r), {"alice": 1}, "members of B's new lobby")
            r = await b2.ok("room.join", room="lobby")
            eq(members_of(r), {"alice": 1, "carol": 1}, "members seen by B's joiner")
            await b1.event("room.joined", room="lobby", user_id="carol")

            # B -> B only.
            r = await b1.ok("room.send", room="lobby", data={"text": "from B"})
            eq(r.get("delivered"), 1, "delivered count of B's send")
            m = await b2.event("room.message", room="lobby")
            eq(m.get("data"), {"text": "from B"}, "data received by B's member")
            eq(m.get("from", {}).get("user_id"), "alice", "sender of B's message")
            # A -> A only.
            r = await a2.ok("room.send", room="lobby", data={"text": "from A"})
            eq(r.get("delivered"), 1, "delivered count of A's send")
            m = await a1.event("room.message", room="lobby")
            eq(m.get("data"), {"text": "from A"}, "data received by A's member")
            # Neither tenant saw the other's join or message.
            await asyncio.gather(
                a1.quiet(is_room_traffic, what="room traffic from B"),
                a2.quiet(is_room_traffic, what="room traffic from B"),
                b1.quiet(is_room_traffic, what="room traffic from A"),
                b2.quiet(is_room_traffic, what="room traffic from A"))

            r = await a1.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1, "bob": 1}, "A's lobby members")
            r = await b2.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1, "carol": 1}, "B's lobby members")
            r = await a2.ok("room.list")
            eq([(x.get("room"), x.get("member_count")) for x in r.get("rooms", [])],
               [("lobby", 2)], "A's room list")

            # B's private room is invisible to A: not_found, not forbidden.
            await b1.ok("room.create", room="b-only", room_type="public")
            await a1.err("room.join", "not_found", room="b-only")
            await a1.err("room.members", "not_found", room="b-only")
            r = await a1.ok("room.list")
            eq([x.get("room") for x in r.get("rooms", [])], ["lobby"], "A's rooms after B's")
            # A's alice kicking "carol" in A's lobby: carol is not in A's room.
            await a1.err("room.kick", "not_found", room="lobby", user="carol")
            r = await b1.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1, "carol": 1}, "B's lobby after A's kick attempt")


@test
async def rooms_member_cannot_kick(ctx):
    """A `member` sending room.kick (or ban) gets forbidden; the owner's kick works."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            owner = await cs.open(srv, "acme", "alice")
            bob = await cs.open(srv, "acme", "bob")
            carol = await cs.open(srv, "acme", "carol")
            await owner.ok("room.create", room="lobby", room_type="public")
            r = await bob.ok("room.join", room="lobby")
            eq(r.get("role"), "member", "bob's role")
            await carol.ok("room.join", room="lobby")
            await bob.err("room.kick", "forbidden", room="lobby", user="carol")
            await bob.err("room.ban", "forbidden", room="lobby", user="carol")
            await bob.err("room.kick", "forbidden", room="lobby", user="alice")
            # A target of rank "none" (not present, no role): only the matrix refuses here,
            # not the rule that targets must rank below the actor.
            await bob.err("room.kick", "forbidden", room="lobby", user="dave")
            await bob.err("room.ban", "forbidden", room="lobby", user="dave")
            await owner.err("room.kick", "not_found", room="lobby", user="dave")
            r = await owner.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1, "bob": 1, "carol": 1}, "members after refused kicks")
            await carol.quiet(lambda m: m.get("type") == "room.kicked", duration=0.2,
                              what="kick after a refused kick")
            r = await owner.ok("room.kick", room="lobby", user="carol", reason="test")
            eq(r.get("connections"), 1, "connections kicked")
            k = await carol.event("room.kicked", room="lobby")
            eq(k.get("by"), "alice", "kicked by")
            left = await bob.event("room.left", room="lobby", user_id="carol")
            eq(left.get("reason"), "kicked", "room.left reason")
            await carol.err("room.send", "forbidden", room="lobby", data="still here?")


@test
async def rooms_banned_join(ctx):
    """A banned user's room.join gets banned (present or not when banned); unban lifts it."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            owner = await cs.open(srv, "acme", "alice")
            bob = await cs.open(srv, "acme", "bob")
            carol = await cs.open(srv, "acme", "carol")
            await owner.ok("room.create", room="lobby", room_type="public")
            await bob.ok("room.join", room="lobby")
            r = await owner.ok("room.ban", room="lobby", user="bob", reason="spam")
            eq(r.get("connections"), 1, "connections removed by the ban")
            eq(r.get("until"), None, "until of a permanent ban")
            b = await bob.event("room.banned", room="lobby")
            eq(b.get("reason"), "spam", "ban reason")
            await bob.err("room.join", "banned", room="lobby")
            # A ban on a user that is not present.
            await owner.ok("room.ban", room="lobby", user="carol", duration=3600)
            await carol.err("room.join", "banned", room="lobby")
            # Another tenant's "carol" is not banned there (the room is not even the same).
            other = cs.add(await Client.open(srv, token("globex", "carol")))
            await other.err("room.join", "not_found", room="lobby")
            await owner.ok("room.unban", room="lobby", user="bob")
            await bob.ok("room.join", room="lobby")
            await carol.err("room.join", "banned", room="lobby")


@test
async def rooms_presence_two_connections(ctx):
    """One user with two connections is one member with 2 connections; room.left comes only
    when both have left."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            alice = await cs.open(srv, "acme", "alice")
            bob1 = await cs.open(srv, "acme", "bob")
            bob2 = await cs.open(srv, "acme", "bob")
            await alice.ok("room.create", room="lobby", room_type="public")
            await bob1.ok("room.join", room="lobby")
            await alice.event("room.joined", room="lobby", user_id="bob")
            r = await bob2.ok("room.join", room="lobby")
            eq(members_of(r), {"alice": 1, "bob": 2}, "members after bob's second join")
            r = await alice.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1, "bob": 2}, "members seen by alice")
            await alice.quiet(lambda m: m.get("type") == "room.joined",
                              what="second room.joined for bob")
            # bob1 receives bob2's messages (per connection, the sender excluded).
            r = await bob2.ok("room.send", room="lobby", data="hi")
            eq(r.get("delivered"), 2, "delivered to alice and bob1")
            await bob1.event("room.message", room="lobby", data="hi")
            await alice.event("room.message", room="lobby", data="hi")

            await bob1.ok("room.leave", room="lobby")
            r = await alice.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1, "bob": 1}, "members after one of bob's leaves")
            await alice.quiet(lambda m: m.get("type") == "room.left",
                              what="room.left while bob is still present")
            await bob2.ok("room.leave", room="lobby")
            left = await alice.event("room.left", room="lobby", user_id="bob")
            eq(left.get("reason"), "leave", "room.left reason")
            r = await alice.ok("room.members", room="lobby")
            eq(members_of(r), {"alice": 1}, "members after both left")

            # Closing the connections counts as leaving too (reason disconnect).
            await bob1.ok("room.join", room="lobby")
            await bob2.ok("room.join", room="lobby")
            await alice.event("room.joined", room="lobby", user_id="bob")
            await bob1.close()
            await alice.quiet(lambda m: m.get("type") == "room.left",
                              what="room.left after one of two connections closed")
            await bob2.close()
            left = await alice.event("room.left", room="lobby", user_id="bob")
            eq(left.get("reason"), "disconnect", "room.left reason after close")


@test
async def rooms_temporary_room(ctx):
    """A temporary room disappears when its last member leaves."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            alice = await cs.open(srv, "acme", "alice")
            bob = await cs.open(srv, "acme", "bob")
            r = await alice.ok("room.create", room="tmp", room_type="temporary")
            eq(r.get("lifetime"), "temporary", "lifetime")
            await alice.err("room.create", "invalid", room="tmp2", room_type="temporary",
                            join=False)
            await bob.ok("room.join", room="tmp")
            await alice.ok("room.leave", room="tmp")
            r = await bob.ok("room.list")
            eq([x.get("room") for x in r.get("rooms", [])], ["tmp"], "rooms while bob is in")
            eq(metric(srv.metrics(), "wshub_rooms_active"), 1.0, "wshub_rooms_active")
            await bob.ok("room.leave", room="tmp")
            r = await bob.ok("room.list")
            eq(r.get("rooms"), [], "rooms after the last member left")
            await alice.err("room.join", "not_found", room="tmp")
            await bob.err("room.members", "not_found", room="tmp")
            eq(metric(srv.metrics(), "wshub_rooms_active"), 0.0, "wshub_rooms_active at end")
            # The same via a disconnect: the last member's connection closes.
            await alice.ok("room.create", room="tmp", room_type="temporary")
            await alice.close()
            await apoll(lambda: _not_found(bob, "tmp"), "tmp deleted after the close")


async def _not_found(c, room):
    r = await c.request("room.join", room=room)
    if r.get("type") == "ack":
        await c.ok("room.leave", room=room)
        return False
    return r.get("code") == "not_found"


@test
async def rooms_private_needs_invite(ctx):
    """A private room: no join and no listing without an invitation; the invited user joins;
    an invite token is usable by its user only."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            alice = await cs.open(srv, "acme", "alice")
            bob = await cs.open(srv, "acme", "bob")
            carol = await cs.open(srv, "acme", "carol")
            await alice.ok("room.create", room="vault", room_type="private")
            await bob.err("room.join", "forbidden", room="vault")
            r = await bob.ok("room.list")
            eq(r.get("rooms"), [], "rooms listed to an uninvited user")
            await bob.err("room.invite", "forbidden", room="vault", user="carol")
            r = await alice.ok("room.invite", room="vault", user="bob")
            inv = r.get("invite")
            check(isinstance(inv, str) and len(inv) == 32, "invite token %r" % inv)
            ev = await bob.event("room.invited", room="vault")
            eq(ev.get("by"), "alice", "room.invited by")
            await carol.err("room.join", "forbidden", room="vault", invite=inv)
            r = await bob.ok("room.list")
            eq([x.get("room") for x in r.get("rooms", [])], ["vault"], "listed once invited")
            r = await bob.ok("room.join", room="vault")
            eq(members_of(r), {"alice": 1, "bob": 1}, "members of vault")
            await carol.err("room.join", "forbidden", room="vault")


@test
async def rooms_protected_password(ctx):
    """A protected room: wrong or missing password -> bad_password (then rate_limited for
    that connection), the right one -> joined."""
    with ctx.server(auth_rooms_config(rooms={"password_retry_delay": "2s"})) as srv:
        async with clients() as cs:
            alice = await cs.open(srv, "acme", "alice")
            bob = await cs.open(srv, "acme", "bob")
            carol = await cs.open(srv, "acme", "carol")
            dave = await cs.open(srv, "acme", "dave")
            await alice.err("room.create", "invalid", room="safe", room_type="protected")
            r = await alice.ok("room.create", room="safe", room_type="protected",
                               password="s3cret")
            check("password" not in json.dumps(r).replace('"password":null', ""),
                  "room description shows a password: %r" % r)
            await bob.err("room.join", "bad_password", room="safe", password="wrong")
            await bob.err("room.join", "rate_limited", room="safe", password="s3cret")
            await dave.err("room.join", "bad_password", room="safe")
            r = await carol.ok("room.join", room="safe", password="s3cret")
            eq(members_of(r), {"alice": 1, "carol": 1}, "members after carol's join")
            r = await carol.ok("room.list")
            eq([x.get("room") for x in r.get("rooms", [])], ["safe"], "protected room listed")

            async def bob_joins():
                r = await bob.request("room.join", room="safe", password="s3cret")
                if r.get("type") == "error":
                    eq(r.get("code"), "rate_limited", "bob's retry")
                    return False
                return True
            await apoll(bob_joins, "bob's join after the retry delay", interval=0.25)
            # Admitted: bob may come back without the password...
            await bob.ok("room.leave", room="safe")
            await bob.ok("room.join", room="safe")
            # ...until he is kicked, which revokes the admission.
            await alice.ok("room.kick", room="safe", user="bob")
            await bob.event("room.kicked", room="safe")
            await bob.err("room.join", "bad_password", room="safe")


@test
async def rooms_subtree_send(ctx):
    """room.send with include_children reaches a child room's member; without it, it does
    not."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            alice = await cs.open(srv, "acme", "alice")
            bob = await cs.open(srv, "acme", "bob")
            carol = await cs.open(srv, "acme", "carol")
            await alice.ok("room.create", room="hq", room_type="public")
            r = await alice.ok("room.create", room="hq-dev", room_type="public", parent="hq",
                               join=False)
            eq(r.get("parent"), "hq", "child's parent")
            await bob.err("room.create", "forbidden", room="hq-x", room_type="public",
                          parent="hq")
            await bob.ok("room.join", room="hq-dev")
            await carol.ok("room.join", room="hq")

            r = await alice.ok("room.send", room="hq", data="parent only")
            eq(r.get("delivered"), 1, "delivered without include_children")
            await carol.event("room.message", data="parent only")
            await bob.quiet(lambda m: m.get("type") == "room.message",
                            what="parent-only message in the child")

            r = await alice.ok("room.send", room="hq", data="all", include_children=True)
            eq(r.get("delivered"), 2, "delivered with include_children")
            # One payload is shared by every group of the subtree (README §6), so the event
            # names the room it was sent to, also in the child.
            m = await bob.event("room.message", data="all")
            eq(m.get("room"), "hq", "room of the subtree message in the child")
            await carol.event("room.message", data="all", room="hq")
            await asyncio.gather(
                bob.quiet(lambda m: m.get("type") == "room.message", what="second copy"),
                carol.quiet(lambda m: m.get("type") == "room.message", what="second copy"))
            # A member may not send to the subtree.
            await carol.err("room.send", "forbidden", room="hq", data="x", include_children=True)
            # The child's room.list under the parent.
            r = await bob.ok("room.list", parent="hq")
            eq([x.get("room") for x in r.get("rooms", [])], ["hq-dev"], "children of hq")


@test
async def tenant_max_connections(ctx):
    """tenants: {A: {max_connections: 2}}: A's third upgrade gets 503 while B connects; a
    closed connection frees its slot."""
    cfg = auth_rooms_config(tenants={"tenant-a": {"max_connections": 2}})
    with ctx.server(cfg) as srv:
        async with clients() as cs:
            a1 = await cs.open(srv, "tenant-a", "u1")
            await cs.open(srv, "tenant-a", "u2")
            await expect_refused(srv, 503, "third connection of tenant-a",
                                 tok=token("tenant-a", "u3"))
            await expect_refused(srv, 503, "tenant-a, same user again", tok=token("tenant-a", "u1"))
            for i in range(3):
                await cs.open(srv, "tenant-b", "b%d" % i)
            eq(metric(srv.metrics(), "wshub_handshake_failures_total",
                      {"reason": "tenant_limit"}), 2.0,
               "wshub_handshake_failures_total{reason=tenant_limit}")
            await a1.close()

            async def reconnect():
                try:
                    c = await Client.open(srv, token("tenant-a", "u4"))
                except wsx.InvalidStatusCode as e:
                    eq(e.status_code, 503, "status while the slot is being freed")
                    return None
                return cs.add(c)
            c = await apoll(reconnect, "a tenant-a slot after a close", interval=0.1)
            eq(c.welcome["tenant_id"], "tenant-a", "tenant of the reconnection")


FANOUT_CONNS = 200
FANOUT_USERS = 40


@test
async def rooms_fanout_200(ctx):
    """~200 connections (40 users x 5) in one room: one room.send gives each other connection
    exactly one copy, and delivered counts them."""
    with ctx.server(auth_rooms_config()) as srv:
        async with clients() as cs:
            sender = await cs.open(srv, "acme", "sender")
            await sender.ok("room.create", room="big", room_type="public")
            toks = [token("acme", "u%02d" % (i % FANOUT_USERS)) for i in range(FANOUT_CONNS)]
            rs = []
            for i in range(0, FANOUT_CONNS, 25):  # a few handshakes at a time
                rs += await asyncio.gather(*(Client.open(srv, t) for t in toks[i:i + 25]))
            for c in rs:
                cs.add(c)
            for i in range(0, FANOUT_CONNS, 25):
                await asyncio.gather(*(c.ok("room.join", room="big") for c in rs[i:i + 25]))
            r = await sender.ok("room.members", room="big")
            ms = members_of(r)
            eq(len(ms), FANOUT_USERS + 1, "members")
            eq(sum(v for k, v in ms.items() if k != "sender"), FANOUT_CONNS,
               "connections of the members")

            payload = {"n": 1, "text": "fan-out"}
            r = await sender.ok("room.send", room="big", data=payload)
            eq(r.get("delivered"), FANOUT_CONNS, "delivered")
            mid = r.get("message_id")

            def is_msg(m):
                return m.get("type") == "room.message" and m.get("room") == "big"

            async def one_copy(c):
                m = await c.event("room.message", timeout=30, room="big", message_id=mid)
                eq(m.get("data"), payload, "data")
                eq(m.get("from", {}).get("user_id"), "sender", "from")
                await c.quiet(is_msg, duration=QUIET, what="second copy")
            await asyncio.gather(*(one_copy(c) for c in rs))
            await sender.quiet(is_msg, duration=0.1, what="copy to the sender")
            eq(metric(srv.metrics(), "wshub_rooms_messages_total"), 1.0,
               "wshub_rooms_messages_total")


# ------------------------------------------------------------------------------------------
# Runner
# ------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wshubd", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--token-tool", required=True)
    ap.add_argument("-k", dest="only", help="run tests whose name contains this")
    args = ap.parse_args()
    for what, path in (("wshubd", args.wshubd), ("wshub-token", args.token_tool)):
        if not os.access(path, os.X_OK):
            print("FAIL setup: %s %s is not executable" % (what, path))
            print("0 passed, 1 failed")
            return 1
    for name in ("auth_jwt", "rooms"):
        so = os.path.join(args.plugin_dir, name, name + ".so")
        if not os.path.exists(so):
            print("FAIL setup: %s is missing" % so)
            print("0 passed, 1 failed")
            return 1
    return run_tests(TESTS, args, TEST_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
