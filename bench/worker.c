/*
 * worker: one load-generating process (see worker.h).
 *
 * Design notes:
 *   - One level-triggered epoll loop, no threads. A connection is a ~150-byte slot in one array;
 *     the epoll tag is (generation << 32 | slot), so an event queued for a socket that has since
 *     been closed (and the slot reused) is recognised and dropped.
 *   - Reads go into one shared 256 KiB buffer. The only bytes a connection ever keeps between
 *     reads are an incomplete HTTP response head (< 8 KiB, only during the handshake) or an
 *     incomplete frame header / control frame (< 140 bytes); they are copied in front of the
 *     next read so the parsers always see contiguous input. Data payloads are streamed (see
 *     wsc__read), so an idle connection owns no heap memory at all.
 *   - Writes go straight to the socket; only what the socket does not take is copied into a
 *     per-connection output buffer, which is freed as soon as it drains (partial writes).
 *   - All timing uses CLOCK_MONOTONIC, which is one clock for every process on the host, so
 *     the publisher's %TS% and the subscribers' receive times (and the workers' windows) are
 *     comparable across worker processes.
 */
#include "worker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "procstat.h"
#include "wsc.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS_PER_S         1000000000ull
#define NS_PER_MS        1000000ull
#define RBUF_CAP         (256u * 1024u)
#define LEFT_CAP         (WSC_MAX_HEAD + WSC_MAX_PENDING) /* room in front of the read buffer */
#define OUT_MAX          (64u << 20)   /* client-side queue bound per connection */
#define PUB_QUEUE_BYTES  (64u * 1024u) /* publisher: stop building while this queued */
#define PUB_BATCH        256           /* publisher: messages per pump call */
#define MAX_EVENTS       1024
#define SWEEP_NS         (100 * NS_PER_MS)
#define CLOSE_WAIT_NS    (2 * NS_PER_S) /* our close frame -> the server's EOF */
#define FANOUT_QUIET_NS  (3 * NS_PER_S)
#define CHURN_BACKOFF_NS (10 * NS_PER_MS)
#define CTRL_TAG         UINT64_MAX

enum { CS_FREE, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSING };

enum {
    CF_READY = 1u << 0,      /* counted as up */
    CF_WELCOMED = 1u << 1,   /* --wait-welcome: the first message arrived */
    CF_SUB_ACKED = 1u << 3,  /* --sub-ack: a message arrived after the last template sent */
    CF_CLOSE_SENT = 1u << 4, /* our close frame is queued */
    CF_OURS = 1u << 5,       /* we started the close */
    CF_COUNTED = 1u << 6,    /* its loss is already counted (server-initiated close) */
    CF_PUB = 1u << 7,        /* the fanout publisher */
    CF_SUB = 1u << 8,        /* a subscriber: sends --sub-template, receives deliveries */
    CF_GOT_TS = 1u << 9,     /* --multi: the current message carried a delivery */
};

enum { EV_IN = 1, EV_OUT = 2 };

enum { PH_CONNECT, PH_WAIT_GO, PH_RUN, PH_CLOSE, PH_DONE };

typedef struct conn {
    int fd;
    uint32_t gen;      /* bumped on release: stale epoll events are ignored */
    uint8_t state;     /* CS_* */
    uint8_t ev;        /* EV_* registered with epoll */
    uint8_t restart;   /* churn: start the next cycle at t_state */
    uint8_t sub_sent;  /* --sub-template / --pub-join messages sent so far */
    uint16_t flags;    /* CF_* */
    uint16_t left_len; /* bytes in left */
    uint16_t ring_head;
    uint16_t ring_n;
    uint8_t reply_miss; /* --reply rules the current message can no longer match */
    uint32_t out_len;   /* output buffer: [out_off, out_len) unsent */
    uint32_t out_off;
    uint32_t out_cap;
    uint8_t *left;    /* unparsed tail of the last read, or NULL */
    uint8_t *out;     /* unsent bytes, or NULL */
    uint64_t *ring;   /* echo: send times of the requests in flight */
    uint64_t t0;      /* connect() time of the current attempt/cycle */
    uint64_t t_state; /* closing: when our close went out; churn restart: when to restart */
    uint64_t msg_len; /* bytes of the data message being received */
    uint64_t n_deliv; /* fanout: deliveries to this subscriber */
    uint64_t gidx;    /* global connection index (%SEQ% of the sub template) */
    msg_scan_t scan;
    wsc_rd_t rd;
    uint8_t key[16]; /* raw Sec-WebSocket-Key of the current handshake */
} conn_t;

/* The per-connection cost of the client: keep it small (a 20k-connection process). */
_Static_assert(sizeof(conn_t) <= 160, "conn_t grew: check the per-connection memory budget");

static struct {
    const bench_cfg_t *cfg;
    const bench_share_t *sh;
    int ep;
    int phase;
    bool parent_gone;
    conn_t *conns;
    uint32_t n_conns;
    uint32_t next_open; /* connect phase: next slot to open */
    uint32_t n_pending; /* attempts that are neither up nor failed */
    uint32_t n_open;    /* open sockets */
    uint32_t n_restart; /* churn: slots waiting to restart */
    uint64_t src_rr;    /* source address round robin */
    uint64_t rng;
    uint64_t timeout_ns;
    uint64_t close_ns;
    uint64_t t_start, t_go, t_win0, t_win1, t_close_end, last_sweep;
    uint64_t cpu_win0;
    bool cpu_win0_taken;
    uint8_t *rbuf; /* LEFT_CAP + RBUF_CAP */
    uint8_t *sbuf; /* one frame being built */
    size_t sbuf_cap;
    char *tbuf; /* one template expansion */
    size_t tbuf_cap;
    uint8_t *payload; /* echo payload */
    /* fanout */
    conn_t *pub;
    bool pub_started, pub_active, pub_done;
    uint64_t pub_t0, pub_end, pub_done_at;
    uint64_t subs_ready, subs_complete, last_deliv;
    uint64_t quiet_ns;
    bench_result_t res;
} W;

uint64_t bench__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: masking keys and handshake keys. A load generator needs distinct keys, not
 * cryptographic ones; the seed comes from getrandom(). */
static uint64_t rng_next(void)
{
    W.rng ^= W.rng >> 12;
    W.rng ^= W.rng << 25;
    W.rng ^= W.rng >> 27;
    return W.rng * UINT64_C(2685821657736338717);
}

static bool in_window(uint64_t now)
{
    return W.phase == PH_RUN && now >= W.t_win0 && now < W.t_win1;
}

static uint64_t tag_of(const conn_t *c)
{
    return ((uint64_t)c->gen << 32) | (uint64_t)(c - W.conns);
}

/* Registers the wanted epoll interest if it differs from the current one. */
static void set_events(conn_t *c, uint8_t want)
{
    if (c->fd < 0 || c->ev == want)
        return;
    struct epoll_event e = {.events =
                                ((want & EV_IN) ? EPOLLIN : 0u) | ((want & EV_OUT) ? EPOLLOUT : 0u),
                            .data.u64 = tag_of(c)};
    if (epoll_ctl(W.ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->ev = want;
}

/* Closes the socket and returns the slot to CS_FREE. Accounting is the caller's business. */
static void conn_release(conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        W.n_open--;
    }
    free(c->left);
    free(c->out);
    free(c->ring);
    uint64_t gidx = c->gidx;
    uint16_t flags = c->flags & (CF_PUB | CF_SUB);
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->gidx = gidx;
    c->flags = flags;
    c->gen = gen;
    c->state = CS_FREE;
}

static void pub_stop(uint64_t now, bool failed)
{
    if (W.pub_done)
        return;
    W.pub_active = false;
    W.pub_done = true;
    W.pub_done_at = now;
    if (failed)
        W.res.pub_failed = 1;
}

/*
 * Every end of a connection comes here once. Before it was up, it is a failed attempt (counted
 * by reason; in churn only inside the window). After it was up: a close we started is a clean
 * end (a churn cycle), anything else is a dropped connection unless already counted when the
 * server's close frame arrived.
 */
static void conn_finish(conn_t *c, int reason, int err)
{
    uint64_t now = bench__now_ns();
    bool churn = W.cfg->scenario == SC_CHURN;
    bool is_pub = c == W.pub;
    bool ok = false;

    if (c->state == CS_FREE)
        return;
    if (!(c->flags & CF_READY)) {
        W.n_pending--;
        if (!churn || in_window(now)) {
            W.res.failed++;
            W.res.fail[reason]++;
            if (err)
                W.res.last_errno[reason] = err;
        }
    } else if ((c->flags & CF_OURS) && reason != FAIL_TIMEOUT) {
        ok = true;
        if (churn && in_window(now)) {
            W.res.ops++;
            hist__record(&W.res.lat, now - c->t0);
        }
    } else if (!(c->flags & CF_COUNTED) && !(c->flags & CF_OURS)) {
        W.res.dropped++;
    }
    if ((c->flags & CF_OURS) && reason == FAIL_TIMEOUT)
        W.res.close_timeouts++;
    conn_release(c);
    if (is_pub)
        pub_stop(now, true);
    if (churn && W.phase == PH_RUN && now < W.t_win1) {
        c->restart = 1;
        c->t_state = ok ? now : now + CHURN_BACKOFF_NS;
        W.n_restart++;
    }
}

/* Appends to the output buffer (no send). Returns 0, or -1 after finishing the connection. */
static int conn_queue(conn_t *c, const void *data, size_t len)
{
    size_t pend = c->out_len - c->out_off;

    if (pend + len > OUT_MAX) {
        conn_finish(c, FAIL_IO, ENOBUFS);
        return -1;
    }
    if (c->out_off && c->out_len + len > c->out_cap) {
        memmove(c->out, c->out + c->out_off, pend);
        c->out_len = (uint32_t)pend;
        c->out_off = 0;
    }
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        uint8_t *n = realloc(c->out, cap);
        if (!n) {
            conn_finish(c, FAIL_IO, ENOMEM);
            return -1;
        }
        c->out = n;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += (uint32_t)len;
    return 0;
}

/* Sends what is queued. Returns 0 (all sent, or the rest waits for EPOLLOUT) or -1 (finished). */
static int conn_flush(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_events(c, EV_IN | EV_OUT);
                return 0;
            }
            conn_finish(c, FAIL_IO, errno);
            return -1;
        }
        W.res.bytes_out += (uint64_t)w;
        c->out_off += (uint32_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = c->out_cap = 0;
    set_events(c, EV_IN);
    return 0;
}

/* Sends now if nothing is queued, queueing what the socket does not take. 0 or -1 (finished). */
static int conn_write(conn_t *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (c->out_len == c->out_off) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_finish(c, FAIL_IO, errno);
                return -1;
            }
            w = 0;
        }
        W.res.bytes_out += (uint64_t)w;
        if ((size_t)w == len)
            return 0;
        p += w;
        len -= (size_t)w;
    }
    if (conn_queue(c, p, len) < 0)
        return -1;
    set_events(c, EV_IN | EV_OUT);
    return 0;
}

/* Frames and sends one message or control frame. 0 or -1 (finished). */
static int send_frame(conn_t *c, int opcode, const void *data, size_t len)
{
    size_t n = wsc__frame(W.sbuf, W.sbuf_cap, opcode, data, len, (uint32_t)rng_next());
    if (!n) {
        conn_finish(c, FAIL_IO, EMSGSIZE);
        return -1;
    }
    return conn_write(c, W.sbuf, n);
}

/* Releases a connection that is not up yet without counting it as a failure: the run is
 * ending and it simply was not needed any more. */
static void conn_discard(conn_t *c)
{
    if (c->state == CS_FREE)
        return;
    if (!(c->flags & CF_READY))
        W.n_pending--;
    conn_release(c);
}

/* Starts our side of the close handshake on an open connection. */
static void conn_close(conn_t *c, uint16_t code)
{
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    if (c->state != CS_OPEN)
        return;
    c->flags |= CF_CLOSE_SENT | CF_OURS;
    c->state = CS_CLOSING;
    c->t_state = bench__now_ns();
    send_frame(c, WSC_OP_CLOSE, payload, sizeof(payload));
}

/* Echo: one request; its send time goes into the ring. */
static int echo_send(conn_t *c, uint64_t now)
{
    const bench_cfg_t *cfg = W.cfg;
    uint32_t k = cfg->inflight;
    int opcode = cfg->binary ? WSC_OP_BINARY : WSC_OP_TEXT;
    c->ring[(c->ring_head + c->ring_n) % k] = now;
    c->ring_n++;
    W.res.sent++;
    if (cfg->echo_tmpl) {
        size_t n =
            msg__tmpl_expand(&cfg->pub_tmpl, W.tbuf, W.tbuf_cap, now / 1000, c->gidx, cfg->size);
        return send_frame(c, opcode, W.tbuf, n);
    }
    return send_frame(c, opcode, W.payload, cfg->size);
}

static void echo_fill(conn_t *c, uint64_t now)
{
    uint32_t gen = c->gen;
    while (c->gen == gen && c->state == CS_OPEN && c->ring_n < W.cfg->inflight) {
        if (echo_send(c, now) < 0)
            return;
    }
}

/* Whether this connection waits for a welcome message before it counts as up. */
static bool wants_welcome(const conn_t *c)
{
    return (c->flags & CF_PUB) ? W.cfg->pub_wait_welcome : W.cfg->wait_welcome;
}

/* A connection is up: count it and start what the scenario does with it. */
static void conn_ready(conn_t *c, uint64_t now)
{
    bool churn = W.cfg->scenario == SC_CHURN;

    c->flags |= CF_READY;
    W.n_pending--;
    if (!churn || in_window(now)) {
        W.res.up++;
        hist__record(&W.res.conn, now - c->t0);
    }
    if (c->flags & CF_SUB)
        W.subs_ready++;
    if (churn)
        conn_close(c, 1000);
}

/*
 * Moves a connection towards "up" after the 101 and after each message that it was waiting
 * for: first the welcome (--wait-welcome), then the subscription messages in order (a
 * subscriber's --sub-template, a non-subscribing publisher's --pub-join); with --sub-ack each
 * waits for an answer to the one before, and the last one's answer makes the connection up.
 * Returns -1 if the connection was finished.
 */
static int advance(conn_t *c, uint64_t now)
{
    const bench_cfg_t *cfg = W.cfg;
    const msg_tmpl_t *list = NULL;
    uint32_t n_list = 0;

    if (wants_welcome(c) && !(c->flags & CF_WELCOMED))
        return 0;
    if (c->flags & CF_SUB) {
        list = cfg->sub_tmpl;
        n_list = cfg->n_sub;
    } else if (c->flags & CF_PUB) {
        list = cfg->pub_join;
        n_list = cfg->n_pub_join;
    }
    while (c->sub_sent < n_list) {
        if (c->sub_sent > 0 && cfg->sub_ack && !(c->flags & CF_SUB_ACKED))
            return 0;
        c->flags &= (uint16_t)~CF_SUB_ACKED;
        size_t n = msg__tmpl_expand(&list[c->sub_sent], W.tbuf, W.tbuf_cap, now / 1000, c->gidx, 0);
        c->sub_sent++;
        if (send_frame(c, WSC_OP_TEXT, W.tbuf, n) < 0)
            return -1;
    }
    if (n_list && cfg->sub_ack && !(c->flags & CF_SUB_ACKED))
        return 0;
    conn_ready(c, now);
    return 0;
}

/* Fanout: a message carrying a timestamp reached a subscriber. */
static void deliver(conn_t *c, uint64_t ts_us, uint64_t now)
{
    uint64_t sent_ns = ts_us * 1000;
    uint64_t lat = now > sent_ns ? now - sent_ns : 0;

    W.res.ops++;
    hist__record(&W.res.lat, lat);
    if (!W.res.first_recv_ns)
        W.res.first_recv_ns = now;
    W.res.last_recv_ns = now;
    W.last_deliv = now;
    if (++c->n_deliv == W.cfg->messages)
        W.subs_complete++;
}

/*
 * --multi: the subscriber's messages are one stream, and every number after --ts-key in it is a
 * delivery, even when one message carries several (NATS packs MSGs) or a key is split across
 * two messages. Only connections that are up count; before that, nothing is measured.
 */
static void scan_stream(conn_t *c, const uint8_t *p, size_t n)
{
    uint64_t now = 0;

    if (c->state != CS_OPEN || !(c->flags & CF_READY)) {
        msg__scan_reset(&c->scan);
        return;
    }
    while (n > 0) {
        uint64_t ts;
        size_t k = msg__scan_feed(&c->scan, &W.cfg->ts_key, p, n);
        bool got = msg__scan_take(&c->scan, &ts);
        if (got) {
            if (!now)
                now = bench__now_ns();
            deliver(c, ts, now);
            c->flags |= CF_GOT_TS;
        }
        if (k == 0 && !got)
            break; /* not reached: feed consumes input unless a number completed */
        p += k;
        n -= k;
    }
}

static int cb_data(void *ud, const uint8_t *p, size_t n)
{
    conn_t *c = ud;
    if (W.cfg->n_reply)
        c->reply_miss =
            msg__reply_feed(W.cfg->reply, W.cfg->n_reply, c->reply_miss, c->msg_len, p, n);
    c->msg_len += n;
    if ((c->flags & CF_SUB) && W.cfg->scenario == SC_FANOUT) {
        if (W.cfg->multi)
            scan_stream(c, p, n);
        else
            msg__scan_feed(&c->scan, &W.cfg->ts_key, p, n);
    }
    return 0;
}

/* A complete data message: drives the handshake steps, or the scenario. Non-zero stops the
 * reader (the connection was finished or closed). */
static int cb_message(void *ud, int opcode)
{
    conn_t *c = ud;
    const bench_cfg_t *cfg = W.cfg;
    uint64_t len = c->msg_len;
    msg_scan_t scan = c->scan;
    uint32_t gen = c->gen;
    uint64_t now = bench__now_ns();
    bool got_ts = (c->flags & CF_GOT_TS) != 0;

    (void)opcode;
    c->msg_len = 0;
    c->flags &= (uint16_t)~CF_GOT_TS;
    if (!cfg->multi)
        msg__scan_reset(&c->scan);
    if (c->state != CS_OPEN)
        return 0; /* closing: whatever is still in flight is not measured */
    if (cfg->n_reply) {
        int r = msg__reply_match(cfg->reply, cfg->n_reply, c->reply_miss, len);
        c->reply_miss = 0;
        if (r >= 0) {
            /* A keep-alive of the protocol: answered, and not part of any scenario step. */
            W.res.replies++;
            return send_frame(c, WSC_OP_TEXT, cfg->reply[r].out, cfg->reply[r].out_len) < 0;
        }
    }
    if (!(c->flags & CF_READY)) {
        if (wants_welcome(c) && !(c->flags & CF_WELCOMED))
            c->flags |= CF_WELCOMED;
        else if (c->sub_sent > 0 && cfg->sub_ack && !(c->flags & CF_SUB_ACKED))
            c->flags |= CF_SUB_ACKED;
        else {
            W.res.other_msgs++;
            return 0;
        }
        advance(c, now);
        return c->gen != gen || c->state != CS_OPEN;
    }
    switch (W.cfg->scenario) {
    case SC_ECHO: {
        if (!c->ring_n) {
            W.res.other_msgs++;
            return 0;
        }
        uint64_t t = c->ring[c->ring_head];
        c->ring_head = (uint16_t)((c->ring_head + 1) % W.cfg->inflight);
        c->ring_n--;
        /* With a template the protocol may answer in another form (NATS: PUB -> MSG). */
        if (!cfg->echo_tmpl && len != cfg->size)
            W.res.mismatched++;
        if (in_window(now)) {
            W.res.ops++;
            hist__record(&W.res.lat, now - t);
        }
        if (W.phase == PH_RUN && now < W.t_win1 && echo_send(c, now) < 0)
            return 1;
        return 0;
    }
    case SC_FANOUT: {
        uint64_t ts;
        if (cfg->multi) {
            if (!got_ts)
                W.res.other_msgs++;
        } else if ((c->flags & CF_SUB) && msg__scan_result(&scan, &ts)) {
            deliver(c, ts, now);
        } else {
            W.res.other_msgs++;
        }
        return 0;
    }
    default:
        W.res.other_msgs++;
        return 0;
    }
}

/* Control frames: ping -> pong with the same payload; the server's close is answered. */
static int cb_control(void *ud, int opcode, const uint8_t *p, size_t n)
{
    conn_t *c = ud;

    if (opcode == WSC_OP_PING) {
        if (c->state != CS_OPEN)
            return 0;
        return send_frame(c, WSC_OP_PONG, p, n) < 0;
    }
    if (opcode != WSC_OP_CLOSE)
        return 0;
    if (c->flags & CF_CLOSE_SENT)
        return 1; /* the handshake is complete: wait for the server's EOF */
    if (c->flags & CF_READY) {
        W.res.dropped++;
        c->flags |= CF_COUNTED;
    }
    /* Echo the status code (RFC 6455 §5.5.1); no reason. */
    c->flags |= CF_CLOSE_SENT;
    c->state = CS_CLOSING;
    c->t_state = bench__now_ns();
    send_frame(c, WSC_OP_CLOSE, p, n >= 2 ? 2 : 0);
    return 1;
}

static const wsc_cb_t reader_cb = {cb_data, cb_message, cb_control};

/* Keeps the unparsed tail for the next read. */
static void stash(conn_t *c, const uint8_t *p, size_t len)
{
    if (len > LEFT_CAP) {
        conn_finish(c, FAIL_PROTO, 0);
        return;
    }
    c->left = malloc(len);
    if (!c->left) {
        conn_finish(c, FAIL_IO, ENOMEM);
        return;
    }
    memcpy(c->left, p, len);
    c->left_len = (uint16_t)len;
}

/* Parses contiguous input: the 101 response during the handshake, then frames. */
static void conn_input(conn_t *c, const uint8_t *p, size_t len)
{
    uint32_t gen = c->gen;
    size_t off = 0;

    if (c->state == CS_HANDSHAKE) {
        char key[25];
        int status;
        wsc__key_b64(c->key, key);
        int r = wsc__response((const char *)p, len, key, &status);
        if (r == 0) {
            stash(c, p, len);
            return;
        }
        if (r < 0) {
            if (r == WSC_ERR_STATUS)
                W.res.last_status = status;
            conn_finish(c, r == WSC_ERR_STATUS ? FAIL_HTTP : FAIL_HANDSHAKE, 0);
            return;
        }
        off = (size_t)r;
        c->state = CS_OPEN;
        if (advance(c, bench__now_ns()) < 0 || c->gen != gen)
            return;
    }
    if (off >= len)
        return;
    ssize_t r = wsc__read(&c->rd, p + off, len - off, &reader_cb, c);
    if (c->gen != gen || c->state == CS_FREE || r == WSC_ERR_STOP)
        return;
    if (r < 0) {
        conn_finish(c, FAIL_PROTO, 0);
        return;
    }
    off += (size_t)r;
    if (off < len)
        stash(c, p + off, len - off);
}

static void conn_read(conn_t *c)
{
    uint8_t *buf = W.rbuf + LEFT_CAP;
    ssize_t n = recv(c->fd, buf, RBUF_CAP, 0);

    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_finish(c, FAIL_IO, errno);
        return;
    }
    if (n == 0) {
        conn_finish(c, FAIL_CLOSED, 0);
        return;
    }
    W.res.bytes_in += (uint64_t)n;
    uint8_t *p = buf;
    size_t len = (size_t)n;
    if (c->left_len) {
        p -= c->left_len;
        memcpy(p, c->left, c->left_len);
        len += c->left_len;
        free(c->left);
        c->left = NULL;
        c->left_len = 0;
    }
    conn_input(c, p, len);
}

/* The non-blocking connect() finished: check it, then send the Upgrade request. */
static void on_connected(conn_t *c)
{
    static char req[20480];
    int err = 0;
    socklen_t l = sizeof(err);
    const bench_url_t *u = (c->flags & CF_PUB) ? &W.cfg->pub_url : &W.cfg->url;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err) {
        conn_finish(c, FAIL_CONNECT, err);
        return;
    }
    uint64_t a = rng_next(), b = rng_next();
    memcpy(c->key, &a, 8);
    memcpy(c->key + 8, &b, 8);
    char key[25];
    wsc__key_b64(c->key, key);
    int n =
        wsc__request(req, sizeof(req), u->host_hdr, u->path, key, W.cfg->headers, W.cfg->n_headers);
    if (n < 0) {
        conn_finish(c, FAIL_HANDSHAKE, EMSGSIZE);
        return;
    }
    c->state = CS_HANDSHAKE;
    set_events(c, EV_IN);
    conn_write(c, req, (size_t)n);
}

/* Starts one connection attempt in slot c. */
static void conn_open(conn_t *c, uint64_t now)
{
    const bench_cfg_t *cfg = W.cfg;
    const bench_url_t *u = (c->flags & CF_PUB) ? &cfg->pub_url : &cfg->url;
    int one = 1;

    assert(c->state == CS_FREE && c->fd < 0);
    c->restart = 0;
    c->t0 = now;
    c->state = CS_CONNECTING;
    W.n_pending++;
    c->fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_finish(c, FAIL_SOCKET, errno);
        return;
    }
    W.n_open++;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->sources && u->addr.ss_family == AF_INET) {
        /* Choose the port at connect() time (per 4-tuple), not at bind() time, so each source
         * address has the whole ephemeral range for this destination. */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(W.src_rr++ % cfg->sources));
        if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            conn_finish(c, FAIL_SOCKET, errno);
            return;
        }
    }
    struct epoll_event e = {.events = EPOLLOUT, .data.u64 = tag_of(c)};
    if (epoll_ctl(W.ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        conn_finish(c, FAIL_SOCKET, errno);
        return;
    }
    c->ev = EV_OUT;
    if (connect(c->fd, (const struct sockaddr *)&u->addr, u->addr_len) == 0) {
        on_connected(c);
        return;
    }
    if (errno != EINPROGRESS)
        conn_finish(c, FAIL_CONNECT, errno);
}

/* Writes one message to the coordinator; a vanished coordinator ends the run. */
static void to_parent(uint32_t type, const void *data, uint32_t len)
{
    pmsg_hdr_t h = {type, len};
    const uint8_t *parts[2] = {(const uint8_t *)&h, data};
    size_t lens[2] = {sizeof(h), len};

    if (W.parent_gone)
        return;
    for (int i = 0; i < 2; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t w = write(W.sh->to_parent, parts[i] + off, lens[i] - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                W.parent_gone = true;
                return;
            }
            off += (size_t)w;
        }
    }
}

/* Publisher: builds and sends messages as the rate (or the socket) allows. */
static void pub_pump(void)
{
    conn_t *p = W.pub;
    const bench_cfg_t *cfg = W.cfg;
    int opcode = cfg->binary ? WSC_OP_BINARY : WSC_OP_TEXT;
    uint64_t now = bench__now_ns();

    if (!W.pub_active)
        return;
    if (p->state != CS_OPEN) {
        pub_stop(now, true);
        return;
    }
    for (int i = 0; i < PUB_BATCH && W.res.sent < cfg->messages; i++) {
        now = bench__now_ns();
        if (now >= W.pub_end)
            break;
        if (cfg->rate > 0) {
            double due = (double)(now - W.pub_t0) / 1e9 * cfg->rate;
            if ((double)W.res.sent > due)
                break;
        }
        if (p->out_len - p->out_off >= PUB_QUEUE_BYTES)
            break;
        size_t n =
            msg__tmpl_expand(&cfg->pub_tmpl, W.tbuf, W.tbuf_cap, now / 1000, W.res.sent, cfg->size);
        size_t f = wsc__frame(W.sbuf, W.sbuf_cap, opcode, W.tbuf, n, (uint32_t)rng_next());
        if (!f || conn_queue(p, W.sbuf, f) < 0) {
            if (p->state != CS_FREE)
                conn_finish(p, FAIL_IO, EMSGSIZE);
            return;
        }
        if (!W.res.sent)
            W.res.first_send_ns = now;
        W.res.last_send_ns = now;
        W.res.sent++;
    }
    if (conn_flush(p) < 0)
        return;
    if (W.res.sent >= cfg->messages || now >= W.pub_end)
        pub_stop(now, false);
}

/* The coordinator said go: the warmup and the measured window start now. */
static void start_run(uint64_t now)
{
    const bench_cfg_t *cfg = W.cfg;

    W.t_go = now;
    W.t_win0 = now + (uint64_t)(cfg->warmup * 1e9);
    W.t_win1 = W.t_win0 + (uint64_t)(cfg->duration * 1e9);
    W.phase = PH_RUN;
    if (cfg->warmup <= 0) {
        W.cpu_win0 = procstat__self_cpu_us();
        W.cpu_win0_taken = true;
    }
    for (uint32_t i = 0; i < W.n_conns; i++) {
        conn_t *c = &W.conns[i];
        switch (cfg->scenario) {
        case SC_ECHO:
            if (c->state == CS_OPEN && (c->flags & CF_READY))
                echo_fill(c, now);
            break;
        case SC_CHURN:
            if (c->state == CS_FREE)
                conn_open(c, now);
            break;
        case SC_FANOUT:
            if (c->state == CS_OPEN && (c->flags & CF_READY) && (c->flags & CF_SUB))
                W.res.subs++;
            break;
        default:
            break;
        }
    }
}

/* Closes every connection: those that are up get a close frame, the others are discarded. */
static void close_all(uint64_t now)
{
    for (uint32_t i = 0; i < W.n_conns; i++) {
        conn_t *c = &W.conns[i];
        c->restart = 0;
        if (c->state == CS_OPEN && (c->flags & CF_READY))
            conn_close(c, 1000);
        else if (c->state != CS_FREE && c->state != CS_CLOSING)
            conn_discard(c);
    }
    W.n_restart = 0;
    W.phase = PH_CLOSE;
    W.t_close_end = now + W.close_ns;
}

/* The measured window is over (for fanout: the deliveries stopped or are all in). */
static void end_run(uint64_t now)
{
    if (!W.cpu_win0_taken) {
        W.cpu_win0 = procstat__self_cpu_us();
        W.cpu_win0_taken = true;
    }
    W.res.cpu_window_us = procstat__self_cpu_us() - W.cpu_win0;
    if (W.cfg->scenario == SC_FANOUT)
        W.res.window_ns = now > W.t_win0 ? now - W.t_win0 : 0;
    else
        W.res.window_ns = W.t_win1 - W.t_win0;
    to_parent(PMSG_MEASURED, NULL, 0);
    close_all(now);
}

static bool run_finished(uint64_t now)
{
    if (W.cfg->scenario != SC_FANOUT)
        return now >= W.t_win1;
    if (now < W.t_win0)
        return false;
    if (W.pub && !W.pub_done)
        return false;
    if (W.subs_complete >= W.subs_ready && (!W.pub || W.res.sent >= W.cfg->messages))
        return true;
    uint64_t last = W.t_win0;
    if (W.last_deliv > last)
        last = W.last_deliv;
    if (W.pub_done_at > last)
        last = W.pub_done_at;
    return now > last && now - last >= W.quiet_ns;
}

/* Handshake, close and churn-restart timers. */
static void sweep(uint64_t now, bool full)
{
    for (uint32_t i = 0; i < W.n_conns; i++) {
        conn_t *c = &W.conns[i];
        switch (c->state) {
        case CS_FREE:
            if (c->restart && now >= c->t_state) {
                W.n_restart--;
                if (W.phase == PH_RUN && now < W.t_win1)
                    conn_open(c, now);
                else
                    c->restart = 0;
            }
            break;
        case CS_CONNECTING:
        case CS_HANDSHAKE:
        case CS_OPEN:
            if (full && !(c->flags & CF_READY) && now - c->t0 >= W.timeout_ns)
                conn_finish(c, FAIL_TIMEOUT, 0);
            break;
        case CS_CLOSING:
            if (full && now - c->t_state >= W.close_ns)
                conn_finish(c, FAIL_TIMEOUT, 0);
            break;
        default:
            break;
        }
    }
}

/* Everything the clock drives: connect pacing, phases, the publisher, timeouts. */
static void tick(uint64_t now)
{
    const bench_cfg_t *cfg = W.cfg;

    if (now >= cfg->deadline_ns && W.phase < PH_CLOSE) {
        W.res.timed_out = 1;
        if (W.phase < PH_WAIT_GO) {
            W.res.connect_ns = now - W.t_start;
            to_parent(PMSG_READY, NULL, 0);
        }
        if (W.phase < PH_RUN) {
            /* An empty window: nothing of the scenario runs past the deadline. */
            W.t_go = W.t_win0 = W.t_win1 = now;
            W.phase = PH_RUN;
        }
        end_run(now);
    }
    switch (W.phase) {
    case PH_CONNECT: {
        double rate = W.sh->connect_rate;
        while (W.next_open < W.n_conns && W.n_pending < cfg->pending) {
            double allowed = (double)(now - W.t_start) / 1e9 * rate;
            if (rate > 0 && (double)W.next_open > allowed)
                break;
            conn_open(&W.conns[W.next_open++], now);
        }
        if (W.next_open == W.n_conns && W.n_pending == 0) {
            W.res.connect_ns = now - W.t_start;
            W.phase = PH_WAIT_GO;
            to_parent(PMSG_READY, NULL, 0);
            if (W.parent_gone)
                W.phase = PH_DONE;
        }
        break;
    }
    case PH_RUN:
        if (!W.cpu_win0_taken && now >= W.t_win0) {
            W.cpu_win0 = procstat__self_cpu_us();
            W.cpu_win0_taken = true;
        }
        if (W.pub && !W.pub_started && now >= W.t_win0) {
            W.pub_started = true;
            if (W.pub->state == CS_OPEN && (W.pub->flags & CF_READY)) {
                W.pub_active = true;
                W.pub_t0 = now;
                W.pub_end = now + (uint64_t)(cfg->duration * 1e9);
            } else {
                pub_stop(now, true);
            }
        }
        if (W.pub_active && W.pub->out_len == W.pub->out_off)
            pub_pump();
        if (run_finished(now))
            end_run(now);
        break;
    case PH_CLOSE:
        if (W.n_open == 0 || now >= W.t_close_end) {
            for (uint32_t i = 0; i < W.n_conns; i++) {
                if (W.conns[i].state != CS_FREE)
                    conn_release(&W.conns[i]);
            }
            W.phase = PH_DONE;
        }
        break;
    default:
        break;
    }
    bool full = now - W.last_sweep >= SWEEP_NS;
    if (full || W.n_restart)
        sweep(now, full);
    if (full)
        W.last_sweep = now;
}

/* How long epoll_wait may sleep: until the next thing tick() has to do. */
static int next_wait_ms(uint64_t now)
{
    const bench_cfg_t *cfg = W.cfg;
    uint64_t next = now + SWEEP_NS;

#define AT(t)                                                                                      \
    do {                                                                                           \
        if ((t) < next)                                                                            \
            next = (t);                                                                            \
    } while (0)
    AT(cfg->deadline_ns);
    switch (W.phase) {
    case PH_CONNECT:
        if (W.next_open < W.n_conns && W.n_pending < cfg->pending) {
            if (W.sh->connect_rate > 0)
                AT(W.t_start + (uint64_t)((double)W.next_open / W.sh->connect_rate * 1e9));
            else
                AT(now);
        }
        break;
    case PH_RUN:
        if (now < W.t_win0)
            AT(W.t_win0);
        if (cfg->scenario != SC_FANOUT)
            AT(W.t_win1);
        if (W.pub_active && W.pub->out_len == W.pub->out_off) {
            if (cfg->rate > 0)
                AT(W.pub_t0 + (uint64_t)((double)W.res.sent / cfg->rate * 1e9));
            else
                AT(now);
        }
        if (cfg->scenario == SC_FANOUT && W.pub_done)
            AT(now + W.quiet_ns / 10);
        if (W.n_restart)
            AT(now + NS_PER_MS);
        break;
    case PH_CLOSE:
        AT(W.t_close_end);
        break;
    default:
        break;
    }
#undef AT
    if (next <= now)
        return 0;
    return (int)((next - now + NS_PER_MS - 1) / NS_PER_MS);
}

static void on_ctrl(uint64_t now)
{
    char b;
    ssize_t n = read(W.sh->from_parent, &b, 1);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        /* The coordinator is gone: nobody will read a result. */
        epoll_ctl(W.ep, EPOLL_CTL_DEL, W.sh->from_parent, NULL);
        W.parent_gone = true;
        if (W.phase < PH_CLOSE)
            close_all(now);
        return;
    }
    if (b == 'G' && W.phase == PH_WAIT_GO)
        start_run(now);
}

static void on_event(const struct epoll_event *e)
{
    if (e->data.u64 == CTRL_TAG) {
        on_ctrl(bench__now_ns());
        return;
    }
    uint32_t idx = (uint32_t)e->data.u64;
    uint32_t gen = (uint32_t)(e->data.u64 >> 32);
    if (idx >= W.n_conns)
        return;
    conn_t *c = &W.conns[idx];
    if (c->gen != gen || c->state == CS_FREE)
        return;
    if (c->state == CS_CONNECTING) {
        if (e->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(c);
        return;
    }
    if ((e->events & EPOLLOUT) && c->out_len != c->out_off) {
        if (conn_flush(c) < 0)
            return;
        if (c == W.pub && W.pub_active && c->out_len == c->out_off)
            pub_pump();
        if (c->gen != gen || c->state == CS_FREE)
            return;
    }
    if (e->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(c);
}

/* Allocates the slots and buffers and assigns roles. Returns 0 or -1. */
static int setup(void)
{
    const bench_cfg_t *cfg = W.cfg;
    const bench_share_t *sh = W.sh;
    uint64_t seed = 0;
    size_t msg_max = cfg->size;

    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = bench__now_ns();
    W.rng = seed ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    if (!W.rng)
        W.rng = 1;
    hist__init(&W.res.lat);
    hist__init(&W.res.conn);
    W.timeout_ns = (uint64_t)(cfg->timeout * 1e9);
    W.close_ns = W.timeout_ns < CLOSE_WAIT_NS ? W.timeout_ns : CLOSE_WAIT_NS;
    W.quiet_ns = W.timeout_ns < FANOUT_QUIET_NS ? W.timeout_ns : FANOUT_QUIET_NS;
    if (cfg->rate > 0)
        W.quiet_ns += (uint64_t)(2e9 / cfg->rate);
    W.src_rr = sh->first_global;

    switch (cfg->scenario) {
    case SC_IDLE:
        W.n_conns = sh->n;
        break;
    case SC_FANOUT:
        W.n_conns = sh->n + ((sh->has_pub && !cfg->pub_is_sub) ? 1 : 0);
        break;
    default:
        W.n_conns = sh->c;
        break;
    }
    W.conns = calloc(W.n_conns ? W.n_conns : 1, sizeof(conn_t));
    W.rbuf = malloc(LEFT_CAP + RBUF_CAP);
    for (uint32_t i = 0; i < cfg->n_sub + cfg->n_pub_join; i++) {
        const msg_tmpl_t *t = i < cfg->n_sub ? &cfg->sub_tmpl[i] : &cfg->pub_join[i - cfg->n_sub];
        size_t t1 = msg__tmpl_max_len(t, 0);
        if (t1 > msg_max)
            msg_max = t1;
    }
    if (cfg->scenario == SC_FANOUT || cfg->echo_tmpl) {
        size_t t2 = msg__tmpl_max_len(&cfg->pub_tmpl, cfg->size);
        if (t2 > msg_max)
            msg_max = t2;
    }
    if (msg_max < WSC_MAX_CONTROL)
        msg_max = WSC_MAX_CONTROL;
    W.tbuf_cap = msg_max + 64;
    W.tbuf = malloc(W.tbuf_cap);
    W.sbuf_cap = msg_max + WSC_MAX_FRAME_HEAD + 64;
    W.sbuf = malloc(W.sbuf_cap);
    W.payload = malloc(cfg->size ? cfg->size : 1);
    if (!W.conns || !W.rbuf || !W.tbuf || !W.sbuf || !W.payload)
        return -1;
    /* Echo payload: printable ASCII (valid UTF-8 for text frames), varied so that a server
     * that compresses or caches cannot make it artificially cheap. */
    for (uint64_t i = 0; i < cfg->size; i++)
        W.payload[i] = (uint8_t)('a' + (rng_next() % 26));
    for (uint32_t i = 0; i < W.n_conns; i++) {
        conn_t *c = &W.conns[i];
        c->fd = -1;
        c->gidx = sh->first_global + i;
        if (cfg->scenario == SC_FANOUT) {
            if (i < sh->n)
                c->flags |= CF_SUB;
            if (sh->has_pub && i == (cfg->pub_is_sub ? 0 : W.n_conns - 1)) {
                c->flags |= CF_PUB;
                W.pub = c;
            }
        } else if ((cfg->scenario == SC_IDLE || cfg->scenario == SC_ECHO) && cfg->has_sub) {
            c->flags |= CF_SUB;
        }
    }
    /* Churn has no connect phase: its slots start cycling at the go. */
    if (cfg->scenario == SC_CHURN)
        W.next_open = W.n_conns;
    W.ep = epoll_create1(EPOLL_CLOEXEC);
    if (W.ep < 0)
        return -1;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = CTRL_TAG};
    if (epoll_ctl(W.ep, EPOLL_CTL_ADD, sh->from_parent, &e) < 0)
        return -1;
    return 0;
}

/* Echo connections need their ring of send times; allocated when they come up would be
 * per-attempt work, so it is done once here. */
static int alloc_rings(void)
{
    if (W.cfg->scenario != SC_ECHO)
        return 0;
    for (uint32_t i = 0; i < W.n_conns; i++) {
        W.conns[i].ring = calloc(W.cfg->inflight, sizeof(uint64_t));
        if (!W.conns[i].ring)
            return -1;
    }
    return 0;
}

int worker__run(const bench_cfg_t *cfg, const bench_share_t *sh)
{
    struct epoll_event evs[MAX_EVENTS];

    memset(&W, 0, sizeof(W));
    W.cfg = cfg;
    W.sh = sh;
    W.ep = -1;
    W.t_start = bench__now_ns();
    W.last_sweep = W.t_start;
    if (setup() < 0 || alloc_rings() < 0) {
        fprintf(stderr, "wshub-bench: worker %u: out of memory or epoll failure\n", sh->index);
        return 1;
    }
    W.phase = PH_CONNECT;
    while (W.phase != PH_DONE) {
        uint64_t now = bench__now_ns();
        tick(now);
        if (W.phase == PH_DONE)
            break;
        int n = epoll_wait(W.ep, evs, MAX_EVENTS, next_wait_ms(bench__now_ns()));
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "wshub-bench: worker %u: epoll_wait: %s\n", sh->index, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            on_event(&evs[i]);
    }
    for (uint32_t i = 0; i < W.n_conns; i++) {
        if (W.conns[i].state != CS_FREE || W.conns[i].ring)
            conn_release(&W.conns[i]);
    }
    W.res.cpu_total_us = procstat__self_cpu_us();
    W.res.maxrss_kb = procstat__self_maxrss_kb();
    to_parent(PMSG_RESULT, &W.res, (uint32_t)sizeof(W.res));
    close(W.ep);
    free(W.conns);
    free(W.rbuf);
    free(W.tbuf);
    free(W.sbuf);
    free(W.payload);
    return 0;
}
