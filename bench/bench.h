/*
 * bench: what the coordinator (wshub-bench.c) and the worker processes (worker.c) share: the
 * parsed command line, each worker's share of the load, the result a worker sends back, and
 * the messages on the worker -> coordinator pipe.
 */
#ifndef WSHUB_BENCH_BENCH_H
#define WSHUB_BENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "hist.h"
#include "msg.h"

typedef enum { SC_IDLE, SC_ECHO, SC_FANOUT, SC_CHURN } scenario_t;

#define BENCH_MAX_HEADERS 16
#define BENCH_MAX_PROCS   64
#define BENCH_MAX_SOURCES 254
#define BENCH_MAX_SUB     8 /* --sub-template / --pub-join messages */

typedef struct bench_url {
    struct sockaddr_storage addr; /* the resolved server address (first getaddrinfo answer) */
    socklen_t addr_len;
    char text[2400];    /* as given, for the report */
    char host_hdr[300]; /* Host: header value (host[:port] as written in the URL) */
    char path[2048];    /* request target: path and query, "/" when absent */
} bench_url_t;

typedef struct bench_cfg {
    scenario_t scenario;
    bench_url_t url;
    bench_url_t pub_url;
    uint32_t n;          /* connections (idle) or subscribers (fanout) */
    uint32_t c;          /* echo connections / churn concurrency */
    uint32_t inflight;   /* echo: messages in flight per connection */
    uint32_t procs;      /* worker processes */
    uint32_t sources;    /* 0: no bind(); k: source 127.0.0.1 .. 127.0.0.k */
    uint32_t pending;    /* per worker: connections in the handshake at once */
    uint64_t size;       /* echo payload / fanout %PAD% target, bytes */
    uint64_t messages;   /* fanout: messages the publisher sends */
    double rate;         /* fanout: publisher messages per second, 0 = as fast as possible */
    double connect_rate; /* connections opened per second, all workers together */
    double duration;     /* seconds */
    double warmup;       /* seconds */
    double timeout;      /* seconds: handshake, drain */
    pid_t pid;           /* server under test, 0 = unknown */
    bool wait_welcome;
    bool pub_wait_welcome; /* the publisher waits too: only when it uses --url */
    bool sub_ack;
    bool pub_is_sub;
    bool binary;
    bool multi;     /* fanout: every --ts-key in the stream is one delivery (NATS) */
    bool echo_tmpl; /* echo: requests are built from --pub-template */
    bool has_sub;   /* a --sub-template was given */
    uint32_t n_sub; /* --sub-template messages, sent in order */
    uint32_t n_pub_join;
    uint32_t n_reply;
    msg_tmpl_t sub_tmpl[BENCH_MAX_SUB];
    msg_tmpl_t pub_join[BENCH_MAX_SUB]; /* sent by a publisher that is not a subscriber */
    msg_tmpl_t pub_tmpl;
    msg_reply_t reply[MSG_MAX_REPLY];
    msg_key_t ts_key;
    const char *headers[BENCH_MAX_HEADERS];
    size_t n_headers;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC: every worker stops by then */
} bench_cfg_t;

/* One worker's part of the load. */
typedef struct bench_share {
    uint32_t index;
    uint32_t n;            /* its connections / subscribers */
    uint32_t c;            /* its echo connections / churn slots */
    uint64_t first_global; /* global index of its first connection (source address spread) */
    double connect_rate;   /* its part of --connect-rate */
    bool has_pub;          /* fanout: this worker runs the publisher */
    int to_parent;         /* pipe (write end) */
    int from_parent;       /* pipe (read end): 'G' starts the measured phase */
} bench_share_t;

/* Why a connection attempt failed. */
enum {
    FAIL_SOCKET,    /* socket()/bind(): out of fds, bad source address */
    FAIL_CONNECT,   /* connect() refused, unreachable, out of ephemeral ports */
    FAIL_HTTP,      /* the server answered the Upgrade with a status other than 101 */
    FAIL_HANDSHAKE, /* a 101 with wrong headers, or a malformed response */
    FAIL_TIMEOUT,   /* no 101 / welcome / subscription answer within --timeout */
    FAIL_CLOSED,    /* the server closed before the connection was up */
    FAIL_PROTO,     /* a frame that breaks RFC 6455 */
    FAIL_IO,        /* send/recv error */
    FAIL_N
};

typedef struct bench_result {
    uint64_t up;      /* connections that came up (churn: in the window) */
    uint64_t failed;  /* attempts that never came up */
    uint64_t dropped; /* connections lost after they were up, before we closed them */
    uint64_t fail[FAIL_N];
    int32_t last_errno[FAIL_N];
    int32_t last_status; /* last non-101 HTTP status */
    uint32_t timed_out;  /* the global deadline cut the run short */
    uint32_t pub_failed; /* fanout: the publisher could not connect or was lost */
    uint64_t connect_ns; /* from the worker's start until every connection was up or failed */
    uint64_t window_ns;  /* length of the measured window */
    uint64_t ops;        /* echo replies / fanout deliveries / churn cycles in the window */
    uint64_t sent;       /* echo requests / publisher messages sent */
    uint64_t subs;       /* fanout: subscribers up when the publisher started */
    uint64_t other_msgs; /* data messages that were not part of the measurement */
    uint64_t replies;    /* messages answered by a --reply rule */
    uint64_t mismatched; /* echo replies whose length differs from --size */
    uint64_t close_timeouts;
    uint64_t first_send_ns; /* fanout: CLOCK_MONOTONIC of the first publish (0 = none) */
    uint64_t last_send_ns;
    uint64_t first_recv_ns; /* fanout: first and last delivery */
    uint64_t last_recv_ns;
    uint64_t cpu_window_us; /* worker CPU during the window */
    uint64_t cpu_total_us;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t maxrss_kb; /* the worker's peak RSS */
    hist_t lat;         /* ns: echo RTT, fanout end-to-end latency, churn cycle time */
    hist_t conn;        /* ns: connect() to up (101, welcome, subscription answer) */
} bench_result_t;

/* Worker -> coordinator messages: a header, then len bytes. */
enum { PMSG_READY = 1, PMSG_MEASURED = 2, PMSG_RESULT = 3 };

typedef struct pmsg_hdr {
    uint32_t type;
    uint32_t len;
} pmsg_hdr_t;

uint64_t bench__now_ns(void);

#endif
