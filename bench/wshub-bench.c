/*
 * wshub-bench: the project's WebSocket load generator.
 *
 * This file is the coordinator: it parses the command line, raises RLIMIT_NOFILE, forks the
 * worker processes (worker.c), reads the server's RSS and CPU from /proc at the phase
 * boundaries, and prints the report: human lines, then one "RESULT key=value ..." line.
 *
 * Process model: the coordinator never holds a connection. It always forks --procs workers
 * (one by default), each with its share of the connections and its own epoll loop, and talks
 * to each over two pipes:
 *
 *     worker -> coordinator   READY (all its connections up or failed), MEASURED (its window
 *                             ended), RESULT (a bench_result_t, histograms included)
 *     coordinator -> worker   'G' once every worker is READY: warmup and window start
 *
 * so every worker starts its window at the same moment, and the server's RSS "with N
 * connections" is read once all of them are up. Several processes are needed past ~19.9k
 * connections, because one process may not hold more descriptors than its hard RLIMIT_NOFILE
 * (20000 on the reference machine); see usage().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "procstat.h"
#include "selftest.h"
#include "worker.h"
#include "wsc.h"

#define FD_RESERVE 32 /* descriptors a worker needs besides its connections */

static const char *const scenario_names[] = {"idle", "echo", "fanout", "churn"};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: wshub-bench --url ws://HOST:PORT/PATH --scenario idle|echo|fanout|churn [options]\n"
        "\n"
        "scenarios:\n"
        "  idle    open -n connections at --connect-rate, hold them --duration seconds; reports\n"
        "          connect rate, failures, server RSS before/after and bytes per connection\n"
        "  echo    -c connections, each with --inflight messages of --size bytes in flight, for\n"
        "          --duration: msgs/s, RTT p50/p99/p99.9, server CPU per echo, client CPU\n"
        "  fanout  -n subscribers on --url each send --sub-template once; one publisher on\n"
        "          --pub-url sends --messages (at --rate, or as fast as possible) made from\n"
        "          --pub-template with %%TS%% = send time; receivers find --ts-key and the number\n"
        "          after it: deliveries/s, loss, end-to-end latency, server CPU per delivery\n"
        "  churn   -c parallel loops of connect, (welcome,) close for --duration: connections/s\n"
        "\n"
        "options:\n"
        "  --url URL             ws:// only (no TLS); host name, IPv4 or [IPv6]; path and query\n"
        "  -n N                  connections (idle) / subscribers (fanout) [100]\n"
        "  -c N                  echo connections / churn concurrency      [10]\n"
        "  --size BYTES          echo payload; fanout: %%PAD%% pads to it    [64]\n"
        "  --inflight K          echo messages in flight per connection    [1]\n"
        "  --duration S          measured window, at most 600 s; fanout: bound on\n"
        "                        the publishing time                       [10]\n"
        "  --warmup S            traffic before the window (not measured)  [0]\n"
        "  --messages M          fanout: messages to publish               [1000]\n"
        "  --rate R              fanout: publisher msgs/s, 0 = max speed   [0]\n"
        "  --connect-rate R      new connections/s, all processes          [2000]\n"
        "  --pending N           handshakes in progress, per process       [256]\n"
        "  --timeout S           handshake (+welcome, +sub ack) and drain  [10]\n"
        "  --wait-welcome        a connection is up only after its first message\n"
        "                        (the /ws protocol sends {\"type\":\"welcome\",...}); the\n"
        "                        publisher waits too unless it has its own --pub-url\n"
        "  --sub-template T      sent by each subscriber (idle, echo: by each connection)\n"
        "                        when up, e.g. '{\"type\":\"room.join\",\"room\":\"bench\"}';\n"
        "                        %%SEQ%% = global connection index, %%TS%% = time. Repeatable\n"
        "                        (at most %d): sent in order, with --sub-ack each one after\n"
        "                        the answer to the previous one\n"
        "  --sub-ack             a subscriber is up only after a message answers its (last)\n"
        "                        --sub-template; the same for --pub-join\n"
        "  --pub-join T          fanout: sent by the publisher before it publishes, when it is\n"
        "                        not a subscriber (e.g. a protocol's connect message, or a\n"
        "                        room join that rooms need for sending). Repeatable\n"
        "  --pub-template T      default '{\"type\":\"bench\",\"ts\":%%TS%%,\"seq\":%%SEQ%%}';\n"
        "                        %%TS%% = CLOCK_MONOTONIC microseconds (same host only),\n"
        "                        %%TS16%% = the same zero-padded to 16 digits (fixed length),\n"
        "                        %%SEQ%% = 0,1,2..., %%PAD%% = 'x' up to --size bytes.\n"
        "                        echo: when given, the requests are built from it (%%SEQ%% =\n"
        "                        global connection index) instead of --size random letters\n"
        "  --pub-url URL         where the publisher connects              [--url]\n"
        "  --pub-is-sub          the publisher is one of the -n subscribers (counts what it\n"
        "                        receives; e.g. a room that also delivers to the sender)\n"
        "  --ts-key K            marker before the timestamp               [\"ts\":]\n"
        "  --multi               fanout: the messages a subscriber receives are one stream\n"
        "                        and every --ts-key in it is one delivery (a server that\n"
        "                        packs several deliveries into one message: NATS MSGs)\n"
        "  --reply 'IN=>OUT'     answer an incoming message that is exactly IN with the text\n"
        "                        message OUT (keep-alives: socket.io '2=>3', NATS\n"
        "                        $'PING\\r\\n=>PONG\\r\\n'). Repeatable (at most %d)\n"
        "  --binary              send binary frames instead of text\n"
        "  -H, --header 'N: V'   extra request header (repeatable, at most %d)\n"
        "  --pid PID             server process: RSS from /proc/PID/status, CPU from\n"
        "                        /proc/PID/stat (user+sys, all threads)\n"
        "  --sources N           spread connections over source addresses 127.0.0.1..N\n"
        "                        (bind before connect; needs a 127.0.0.0/8 target). One\n"
        "                        source address has ~28k ephemeral ports per destination.\n"
        "  --procs K             worker processes, each with 1/K of the connections. One\n"
        "                        process holds at most its RLIMIT_NOFILE hard limit minus %d\n"
        "                        descriptors (hard limit 20000 here: ~19.9k connections), so\n"
        "                        use K >= N/19900 for more; results are aggregated.\n"
        "  --self-test           run the built-in codec/histogram tests and exit\n"
        "  -h, --help\n"
        "\n"
        "The run is bounded: every process stops at a global deadline of connect time +\n"
        "warmup + duration + 2 x timeout + slack. Output: human lines, then one line\n"
        "'RESULT scenario=... key=value ...'. Exit status 0 when the run completed with at\n"
        "least one successful connection (churn: cycle), 1 otherwise, 2 on usage errors.\n",
        BENCH_MAX_SUB, MSG_MAX_REPLY, BENCH_MAX_HEADERS, FD_RESERVE);
}

/* Strict unsigned parse of the whole string within [lo, hi]. */
static int parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-' || *s == '+')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, "wshub-bench: %s: expected an integer in %" PRIu64 "..%" PRIu64 ", got '%s'\n",
            name, lo, hi, s ? s : "");
    return -1;
}

static int parse_u32(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(name, s, lo, hi, &v) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Strict parse of a finite decimal number within [lo, hi]. */
static int parse_num(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : NAN;
    if (!s || !*s || errno || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "wshub-bench: %s: expected a number in %g..%g, got '%s'\n", name, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

/* True if s has no control characters and no spaces (it goes into the request line/headers). */
static bool is_token_text(const char *s, bool allow_space)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7F || (!allow_space && c == ' '))
            return false;
    }
    return true;
}

/*
 * Parses ws://host[:port][/path][?query] and resolves the host once (getaddrinfo; the first
 * IPv4 answer, else the first answer). The Host header repeats the authority as written.
 */
static int parse_url(const char *name, const char *s, bench_url_t *u)
{
    char host[256], port[8] = "80";
    const char *auth, *ae, *hs, *he;

    memset(u, 0, sizeof(*u));
    if (strncmp(s, "wss://", 6) == 0) {
        fprintf(stderr, "wshub-bench: %s: wss:// (TLS) is not supported; use ws://\n", name);
        return -1;
    }
    if (strncmp(s, "ws://", 5) != 0 || strlen(s) >= sizeof(u->text) || !is_token_text(s, false)) {
        fprintf(stderr, "wshub-bench: %s: expected ws://HOST[:PORT][/PATH], got '%s'\n", name, s);
        return -1;
    }
    snprintf(u->text, sizeof(u->text), "%s", s);
    auth = s + 5;
    ae = auth + strcspn(auth, "/?#");
    if (*ae == '#' || (size_t)(ae - auth) >= sizeof(u->host_hdr) || ae == auth)
        goto bad;
    memcpy(u->host_hdr, auth, (size_t)(ae - auth));
    u->host_hdr[ae - auth] = '\0';
    const char *colon = NULL;
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(ae - auth));
        if (!rb)
            goto bad;
        hs = auth + 1;
        he = rb;
        if (rb + 1 < ae) {
            if (rb[1] != ':')
                goto bad;
            colon = rb + 1;
        }
    } else {
        hs = auth;
        colon = memchr(auth, ':', (size_t)(ae - auth));
        he = colon ? colon : ae;
        if (colon && memchr(colon + 1, ':', (size_t)(ae - colon - 1)))
            goto bad;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof(host))
        goto bad;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (colon) {
        uint64_t p;
        char tmp[16];
        size_t pl = (size_t)(ae - colon - 1);
        if (pl == 0 || pl >= sizeof(tmp))
            goto bad;
        memcpy(tmp, colon + 1, pl);
        tmp[pl] = '\0';
        if (parse_u64(name, tmp, 1, 65535, &p) < 0)
            return -1;
        snprintf(port, sizeof(port), "%u", (unsigned)p);
    }
    if (*ae == '?')
        snprintf(u->path, sizeof(u->path), "/%s", ae);
    else
        snprintf(u->path, sizeof(u->path), "%s", *ae ? ae : "/");

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        fprintf(stderr, "wshub-bench: %s: cannot resolve '%s': %s\n", name, host, gai_strerror(rc));
        return -1;
    }
    /* Prefer IPv4: "localhost" often resolves to ::1 first while servers under test
     * commonly listen on 127.0.0.1 only. A bracketed IPv6 literal has no IPv4 answer. */
    const struct addrinfo *pick = ai;
    for (const struct addrinfo *a = ai; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    memcpy(&u->addr, pick->ai_addr, pick->ai_addrlen);
    u->addr_len = pick->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
bad:
    fprintf(stderr, "wshub-bench: %s: malformed URL '%s'\n", name, s);
    return -1;
}

/* True if the URL resolved to an address in 127.0.0.0/8 (what --sources can reach). */
static bool is_loopback4(const bench_url_t *u)
{
    const struct sockaddr_in *sa = (const struct sockaddr_in *)&u->addr;
    return u->addr.ss_family == AF_INET && (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
}

enum {
    O_URL = 256,
    O_SCENARIO,
    O_SIZE,
    O_DURATION,
    O_MESSAGES,
    O_RATE,
    O_PID,
    O_SOURCES,
    O_CONNECT_RATE,
    O_WAIT_WELCOME,
    O_SUB_TEMPLATE,
    O_SUB_ACK,
    O_PUB_TEMPLATE,
    O_PUB_URL,
    O_PUB_IS_SUB,
    O_TS_KEY,
    O_WARMUP,
    O_TIMEOUT,
    O_PROCS,
    O_INFLIGHT,
    O_BINARY,
    O_PENDING,
    O_PUB_JOIN,
    O_REPLY,
    O_MULTI,
    O_SELF_TEST,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"scenario", required_argument, NULL, O_SCENARIO},
    {"size", required_argument, NULL, O_SIZE},
    {"duration", required_argument, NULL, O_DURATION},
    {"messages", required_argument, NULL, O_MESSAGES},
    {"rate", required_argument, NULL, O_RATE},
    {"pid", required_argument, NULL, O_PID},
    {"sources", required_argument, NULL, O_SOURCES},
    {"connect-rate", required_argument, NULL, O_CONNECT_RATE},
    {"wait-welcome", no_argument, NULL, O_WAIT_WELCOME},
    {"sub-template", required_argument, NULL, O_SUB_TEMPLATE},
    {"sub-ack", no_argument, NULL, O_SUB_ACK},
    {"pub-template", required_argument, NULL, O_PUB_TEMPLATE},
    {"pub-url", required_argument, NULL, O_PUB_URL},
    {"pub-is-sub", no_argument, NULL, O_PUB_IS_SUB},
    {"ts-key", required_argument, NULL, O_TS_KEY},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"procs", required_argument, NULL, O_PROCS},
    {"inflight", required_argument, NULL, O_INFLIGHT},
    {"binary", no_argument, NULL, O_BINARY},
    {"pending", required_argument, NULL, O_PENDING},
    {"pub-join", required_argument, NULL, O_PUB_JOIN},
    {"reply", required_argument, NULL, O_REPLY},
    {"multi", no_argument, NULL, O_MULTI},
    {"header", required_argument, NULL, 'H'},
    {"self-test", no_argument, NULL, O_SELF_TEST},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses argv into cfg. Returns 0, 1 (--help/--self-test done: *rc holds the exit code) or -1. */
static int parse_args(int argc, char **argv, bench_cfg_t *cfg, int *rc)
{
    const char *url = NULL, *pub_url = NULL, *ts_key = "\"ts\":";
    const char *pub_t = "{\"type\":\"bench\",\"ts\":%TS%,\"seq\":%SEQ%}";
    const char *sub_t[BENCH_MAX_SUB], *join_t[BENCH_MAX_SUB];
    bool n_set = false, c_set = false, pub_t_set = false;
    uint64_t v;
    int o;

    memset(cfg, 0, sizeof(*cfg));
    cfg->scenario = SC_IDLE;
    cfg->n = 100;
    cfg->c = 10;
    cfg->inflight = 1;
    cfg->procs = 1;
    cfg->pending = 256;
    cfg->size = 64;
    cfg->messages = 1000;
    cfg->connect_rate = 2000;
    cfg->duration = 10;
    cfg->timeout = 10;

    while ((o = getopt_long(argc, argv, "n:c:H:h", long_opts, NULL)) != -1) {
        int r = 0;
        switch (o) {
        case O_URL:
            url = optarg;
            break;
        case O_PUB_URL:
            pub_url = optarg;
            break;
        case O_SCENARIO: {
            size_t i;
            for (i = 0; i < 4 && strcmp(optarg, scenario_names[i]) != 0; i++)
                ;
            if (i == 4) {
                fprintf(stderr,
                        "wshub-bench: --scenario: expected idle|echo|fanout|churn, "
                        "got '%s'\n",
                        optarg);
                return -1;
            }
            cfg->scenario = (scenario_t)i;
            break;
        }
        case 'n':
            r = parse_u32("-n", optarg, 1, 2000000, &cfg->n);
            n_set = true;
            break;
        case 'c':
            r = parse_u32("-c", optarg, 1, 100000, &cfg->c);
            c_set = true;
            break;
        case O_SIZE:
            r = parse_u64("--size", optarg, 0, 16u << 20, &cfg->size);
            break;
        case O_INFLIGHT:
            r = parse_u32("--inflight", optarg, 1, 1024, &cfg->inflight);
            break;
        case O_DURATION:
            r = parse_num("--duration", optarg, 0.01, 600, &cfg->duration);
            break;
        case O_WARMUP:
            r = parse_num("--warmup", optarg, 0, 600, &cfg->warmup);
            break;
        case O_TIMEOUT:
            r = parse_num("--timeout", optarg, 0.1, 120, &cfg->timeout);
            break;
        case O_MESSAGES:
            r = parse_u64("--messages", optarg, 1, 1000000000, &cfg->messages);
            break;
        case O_RATE:
            r = parse_num("--rate", optarg, 0, 10000000, &cfg->rate);
            if (!r && cfg->rate > 0 && cfg->rate < 0.1) {
                fprintf(stderr, "wshub-bench: --rate: 0 (max speed) or >= 0.1\n");
                r = -1;
            }
            break;
        case O_CONNECT_RATE:
            r = parse_num("--connect-rate", optarg, 1, 1000000, &cfg->connect_rate);
            break;
        case O_PENDING:
            r = parse_u32("--pending", optarg, 1, 65536, &cfg->pending);
            break;
        case O_PID:
            r = parse_u64("--pid", optarg, 1, INT32_MAX, &v);
            cfg->pid = (pid_t)v;
            break;
        case O_SOURCES:
            r = parse_u32("--sources", optarg, 1, BENCH_MAX_SOURCES, &cfg->sources);
            break;
        case O_PROCS:
            r = parse_u32("--procs", optarg, 1, BENCH_MAX_PROCS, &cfg->procs);
            break;
        case O_WAIT_WELCOME:
            cfg->wait_welcome = true;
            break;
        case O_SUB_ACK:
            cfg->sub_ack = true;
            break;
        case O_PUB_IS_SUB:
            cfg->pub_is_sub = true;
            break;
        case O_BINARY:
            cfg->binary = true;
            break;
        case O_SUB_TEMPLATE:
        case O_PUB_JOIN: {
            uint32_t *cnt = o == O_SUB_TEMPLATE ? &cfg->n_sub : &cfg->n_pub_join;
            const char *name = o == O_SUB_TEMPLATE ? "--sub-template" : "--pub-join";
            if (*cnt == BENCH_MAX_SUB || strlen(optarg) > (1u << 20)) {
                fprintf(stderr, "wshub-bench: %s: at most %d, each at most 1 MiB\n", name,
                        BENCH_MAX_SUB);
                return -1;
            }
            (o == O_SUB_TEMPLATE ? sub_t : join_t)[(*cnt)++] = optarg;
            break;
        }
        case O_PUB_TEMPLATE:
            pub_t = optarg;
            pub_t_set = true;
            break;
        case O_REPLY:
            if (cfg->n_reply == MSG_MAX_REPLY ||
                msg__reply_parse(&cfg->reply[cfg->n_reply], optarg) < 0 ||
                cfg->reply[cfg->n_reply].out_len > WSC_MAX_CONTROL) {
                fprintf(stderr,
                        "wshub-bench: --reply: at most %d rules 'IN=>OUT' with a non-empty IN "
                        "and at most %d bytes of OUT\n",
                        MSG_MAX_REPLY, WSC_MAX_CONTROL);
                return -1;
            }
            cfg->n_reply++;
            break;
        case O_MULTI:
            cfg->multi = true;
            break;
        case O_TS_KEY:
            ts_key = optarg;
            break;
        case 'H':
            if (cfg->n_headers == BENCH_MAX_HEADERS || !strchr(optarg, ':') ||
                !is_token_text(optarg, true) || strlen(optarg) > 1024) {
                fprintf(stderr,
                        "wshub-bench: --header: at most %d headers 'Name: value' "
                        "without control characters\n",
                        BENCH_MAX_HEADERS);
                return -1;
            }
            cfg->headers[cfg->n_headers++] = optarg;
            break;
        case O_SELF_TEST:
            *rc = selftest__run();
            return 1;
        case 'h':
            usage(stdout);
            *rc = 0;
            return 1;
        default:
            usage(stderr);
            return -1;
        }
        if (r < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "wshub-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!url) {
        fprintf(stderr, "wshub-bench: --url is required (see --help)\n");
        return -1;
    }
    if (parse_url("--url", url, &cfg->url) < 0)
        return -1;
    if (parse_url("--pub-url", pub_url ? pub_url : url, &cfg->pub_url) < 0)
        return -1;
    /* The publisher speaks the protocol of its own URL: it waits for a welcome only when it
     * connects where the subscribers do (or is one of them). */
    cfg->pub_wait_welcome =
        cfg->wait_welcome && (!pub_url || strcmp(pub_url, url) == 0 || cfg->pub_is_sub);
    if (cfg->sources && (!is_loopback4(&cfg->url) || !is_loopback4(&cfg->pub_url))) {
        fprintf(stderr, "wshub-bench: --sources needs an IPv4 (127.0.0.0/8) target\n");
        return -1;
    }
    if (msg__key_init(&cfg->ts_key, ts_key) < 0) {
        fprintf(stderr, "wshub-bench: --ts-key: 1..%d bytes\n", MSG_MAX_KEY);
        return -1;
    }
    if (cfg->n_sub && cfg->scenario == SC_CHURN) {
        fprintf(stderr, "wshub-bench: --sub-template applies to idle, echo and fanout only\n");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->n_sub; i++) {
        if (msg__tmpl_parse(&cfg->sub_tmpl[i], sub_t[i]) < 0) {
            fprintf(stderr, "wshub-bench: --sub-template: too many placeholders\n");
            return -1;
        }
    }
    cfg->has_sub = cfg->n_sub > 0;
    if (cfg->n_pub_join && (cfg->scenario != SC_FANOUT || cfg->pub_is_sub)) {
        fprintf(stderr, "wshub-bench: --pub-join applies to fanout without --pub-is-sub (a "
                        "publisher that subscribes sends --sub-template)\n");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->n_pub_join; i++) {
        if (msg__tmpl_parse(&cfg->pub_join[i], join_t[i]) < 0) {
            fprintf(stderr, "wshub-bench: --pub-join: too many placeholders\n");
            return -1;
        }
    }
    if (cfg->sub_ack && !cfg->has_sub && !cfg->n_pub_join) {
        fprintf(stderr, "wshub-bench: --sub-ack needs --sub-template or --pub-join\n");
        return -1;
    }
    if (cfg->multi && cfg->scenario != SC_FANOUT) {
        fprintf(stderr, "wshub-bench: --multi applies to fanout only\n");
        return -1;
    }
    cfg->echo_tmpl = cfg->scenario == SC_ECHO && pub_t_set;
    if (msg__tmpl_parse(&cfg->pub_tmpl, pub_t) < 0 || strlen(pub_t) > (1u << 20)) {
        fprintf(stderr, "wshub-bench: --pub-template: too many placeholders or too long\n");
        return -1;
    }
    if (cfg->scenario == SC_FANOUT && !cfg->pub_tmpl.has_ts) {
        fprintf(stderr,
                "wshub-bench: --pub-template must contain %%TS%% or %%TS16%% (fanout latency)\n");
        return -1;
    }
    if ((cfg->scenario == SC_ECHO || cfg->scenario == SC_CHURN) && n_set)
        fprintf(stderr, "wshub-bench: note: -n is not used by %s (use -c)\n",
                scenario_names[cfg->scenario]);
    if ((cfg->scenario == SC_IDLE || cfg->scenario == SC_FANOUT) && c_set)
        fprintf(stderr, "wshub-bench: note: -c is not used by %s (use -n)\n",
                scenario_names[cfg->scenario]);
    if (cfg->scenario == SC_ECHO && cfg->wait_welcome)
        fprintf(stderr, "wshub-bench: note: echo with --wait-welcome: the first message of "
                        "each connection is taken as the welcome\n");
    return 0;
}

/* Worker bookkeeping in the coordinator. */
typedef struct wk {
    pid_t pid;
    int up;   /* read end: messages from the worker */
    int down; /* write end: 'G' */
    bool ready, measured, done, dead;
    bench_result_t res;
} wk_t;

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t off = 0;
    while (off < len) {
        ssize_t n = read(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* Reads one message from worker w; marks it dead on EOF or garbage. */
static void read_worker(wk_t *w)
{
    pmsg_hdr_t h;

    if (read_full(w->up, &h, sizeof(h)) < 0) {
        w->dead = true;
        return;
    }
    switch (h.type) {
    case PMSG_READY:
        if (h.len == 0) {
            w->ready = true;
            return;
        }
        break;
    case PMSG_MEASURED:
        if (h.len == 0) {
            w->measured = true;
            return;
        }
        break;
    case PMSG_RESULT:
        if (h.len == sizeof(bench_result_t) && read_full(w->up, &w->res, sizeof(w->res)) == 0) {
            w->done = w->ready = w->measured = true;
            return;
        }
        break;
    default:
        break;
    }
    w->dead = true;
}

typedef struct srv_stats {
    int64_t rss_before_kb, rss_after_kb, rss_end_kb;
    int64_t anon_before_kb, anon_after_kb;
    int64_t cpu0_us, cpu1_us, cpu_go_us;
} srv_stats_t;

static double ns_to_us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static const char *const fail_names[FAIL_N] = {"socket",  "connect", "http",     "handshake",
                                               "timeout", "closed",  "protocol", "io"};

/* Prints the human report and the RESULT line. Returns the exit code. */
static int report(const bench_cfg_t *cfg, const wk_t *wks, const srv_stats_t *st, double wall_s)
{
    static bench_result_t t; /* two histograms: not on the stack */
    uint64_t first_send = 0, last_recv = 0, first_recv = 0, last_send = 0;
    bool all_done = true;
    char res[2048];
    size_t off = 0;

#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (off < sizeof(res))                                                                     \
            off += (size_t)snprintf(res + off, sizeof(res) - off, __VA_ARGS__);                    \
    } while (0)

    memset(&t, 0, sizeof(t));
    hist__init(&t.lat);
    hist__init(&t.conn);
    for (uint32_t i = 0; i < cfg->procs; i++) {
        const bench_result_t *r = &wks[i].res;
        if (!wks[i].done) {
            all_done = false;
            continue;
        }
        t.up += r->up;
        t.failed += r->failed;
        t.dropped += r->dropped;
        for (int k = 0; k < FAIL_N; k++) {
            t.fail[k] += r->fail[k];
            if (r->last_errno[k])
                t.last_errno[k] = r->last_errno[k];
        }
        if (r->last_status)
            t.last_status = r->last_status;
        t.timed_out |= r->timed_out;
        t.pub_failed |= r->pub_failed;
        if (r->connect_ns > t.connect_ns)
            t.connect_ns = r->connect_ns;
        if (r->window_ns > t.window_ns)
            t.window_ns = r->window_ns;
        t.ops += r->ops;
        t.sent += r->sent;
        t.subs += r->subs;
        t.other_msgs += r->other_msgs;
        t.replies += r->replies;
        t.mismatched += r->mismatched;
        t.close_timeouts += r->close_timeouts;
        t.cpu_window_us += r->cpu_window_us;
        t.cpu_total_us += r->cpu_total_us;
        t.bytes_in += r->bytes_in;
        t.bytes_out += r->bytes_out;
        t.maxrss_kb += r->maxrss_kb;
        if (r->first_send_ns && (!first_send || r->first_send_ns < first_send))
            first_send = r->first_send_ns;
        if (r->last_send_ns > last_send)
            last_send = r->last_send_ns;
        if (r->first_recv_ns && (!first_recv || r->first_recv_ns < first_recv))
            first_recv = r->first_recv_ns;
        if (r->last_recv_ns > last_recv)
            last_recv = r->last_recv_ns;
        hist__merge(&t.lat, &r->lat);
        hist__merge(&t.conn, &r->conn);
    }

    const char *sc = scenario_names[cfg->scenario];
    double win_s = (double)t.window_ns / 1e9;
    double connect_s = (double)t.connect_ns / 1e9;
    bool have_cpu = st->cpu0_us >= 0 && st->cpu1_us >= st->cpu0_us;
    double srv_cpu_s = have_cpu ? (double)(st->cpu1_us - st->cpu0_us) / 1e6 : 0;
    double cli_cpu_s = (double)t.cpu_window_us / 1e6;

    printf("wshub-bench: scenario=%s url=%s procs=%u (%.1f s wall)\n", sc, cfg->url.text,
           cfg->procs, wall_s);
    if (t.failed) {
        printf("failures: %" PRIu64 " --", t.failed);
        for (int k = 0; k < FAIL_N; k++) {
            if (!t.fail[k])
                continue;
            printf(" %s=%" PRIu64, fail_names[k], t.fail[k]);
            if (k == FAIL_HTTP && t.last_status)
                printf(" (last status %d)", t.last_status);
            else if (t.last_errno[k])
                printf(" (%s)", strerror(t.last_errno[k]));
        }
        printf("\n");
    }
    if (t.timed_out)
        printf("warning: the global deadline cut the run short\n");
    if (!all_done)
        printf("warning: a worker process died; its share is missing from the results\n");
    ADD("RESULT scenario=%s procs=%u", sc, cfg->procs);

    switch (cfg->scenario) {
    case SC_IDLE: {
        double cps = connect_s > 0 ? (double)t.up / connect_s : 0;
        printf("idle: %" PRIu64 " connections up, %" PRIu64 " failed in %.3f s (%.0f conn/s); "
               "connect latency p50 %.1f us, p99 %.1f us\n",
               t.up, t.failed, connect_s, cps, ns_to_us(hist__quantile(&t.conn, 0.5)),
               ns_to_us(hist__quantile(&t.conn, 0.99)));
        printf("held %.1f s: %" PRIu64 " dropped\n", win_s, t.dropped);
        ADD(" conns=%" PRIu64 " failed=%" PRIu64 " dropped=%" PRIu64 " connect_s=%.3f"
            " conn_per_s=%.1f conn_p50_us=%.1f conn_p99_us=%.1f duration_s=%.3f",
            t.up, t.failed, t.dropped, connect_s, cps, ns_to_us(hist__quantile(&t.conn, 0.5)),
            ns_to_us(hist__quantile(&t.conn, 0.99)), win_s);
        if (cfg->pid && st->rss_before_kb >= 0 && st->rss_after_kb >= 0) {
            double per =
                t.up ? (double)(st->rss_after_kb - st->rss_before_kb) * 1024.0 / (double)t.up : 0;
            printf("server: rss %.1f MiB before, %.1f MiB with the connections (%.0f B/conn), "
                   "%.1f MiB at the end of the hold\n",
                   (double)st->rss_before_kb / 1024, (double)st->rss_after_kb / 1024, per,
                   (double)st->rss_end_kb / 1024);
            ADD(" rss_before_kb=%" PRId64 " rss_after_kb=%" PRId64 " rss_end_kb=%" PRId64
                " rss_per_conn=%.0f",
                st->rss_before_kb, st->rss_after_kb, st->rss_end_kb, per);
            if (st->anon_before_kb >= 0 && st->anon_after_kb >= 0 && t.up) {
                double anon =
                    (double)(st->anon_after_kb - st->anon_before_kb) * 1024.0 / (double)t.up;
                printf("server: anonymous memory (RssAnon) %.0f B/conn\n", anon);
                ADD(" anon_per_conn=%.0f", anon);
            }
        }
        break;
    }
    case SC_ECHO: {
        double mps = win_s > 0 ? (double)t.ops / win_s : 0;
        printf("echo: %" PRIu64 " connections up (%" PRIu64 " failed, %" PRIu64 " dropped), "
               "size %" PRIu64 " B, inflight %u\n",
               t.up, t.failed, t.dropped, cfg->size, cfg->inflight);
        printf("echo: %" PRIu64 " replies in %.3f s = %.0f msgs/s; RTT us p50 %.1f p99 %.1f "
               "p99.9 %.1f max %.1f mean %.1f\n",
               t.ops, win_s, mps, ns_to_us(hist__quantile(&t.lat, 0.5)),
               ns_to_us(hist__quantile(&t.lat, 0.99)), ns_to_us(hist__quantile(&t.lat, 0.999)),
               ns_to_us(t.lat.count ? t.lat.max : 0), hist__mean(&t.lat) / 1000.0);
        if (t.mismatched)
            printf("warning: %" PRIu64 " replies had a length other than --size\n", t.mismatched);
        ADD(" conns=%" PRIu64 " failed=%" PRIu64 " dropped=%" PRIu64 " size=%" PRIu64
            " inflight=%u duration_s=%.3f msgs=%" PRIu64 " msgs_per_s=%.1f p50_us=%.1f"
            " p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f mismatched=%" PRIu64,
            t.up, t.failed, t.dropped, cfg->size, cfg->inflight, win_s, t.ops, mps,
            ns_to_us(hist__quantile(&t.lat, 0.5)), ns_to_us(hist__quantile(&t.lat, 0.99)),
            ns_to_us(hist__quantile(&t.lat, 0.999)), ns_to_us(t.lat.count ? t.lat.max : 0),
            hist__mean(&t.lat) / 1000.0, t.mismatched);
        break;
    }
    case SC_FANOUT: {
        uint64_t expected = t.sent * t.subs;
        double loss = expected ? 1.0 - (double)t.ops / (double)expected : 0;
        if (loss < 0)
            loss = 0;
        double span =
            first_send && last_recv > first_send ? (double)(last_recv - first_send) / 1e9 : 0;
        double dps = span > 0 ? (double)t.ops / span : 0;
        double pub_span = last_send > first_send ? (double)(last_send - first_send) / 1e9 : 0;
        double pps = pub_span > 0 ? (double)(t.sent - 1) / pub_span : 0;
        printf("fanout: %" PRIu64 " subscribers up (%" PRIu64 " failed, %" PRIu64 " dropped)%s\n",
               t.subs, t.failed, t.dropped, t.pub_failed ? "; the publisher FAILED" : "");
        printf("fanout: %" PRIu64 " published (%.0f msgs/s), %" PRIu64 " expected, %" PRIu64
               " received (loss %.4f%%) = %.0f deliveries/s over %.3f s\n",
               t.sent, pps, expected, t.ops, loss * 100, dps, span);
        printf("fanout: latency us p50 %.1f p99 %.1f p99.9 %.1f max %.1f mean %.1f\n",
               ns_to_us(hist__quantile(&t.lat, 0.5)), ns_to_us(hist__quantile(&t.lat, 0.99)),
               ns_to_us(hist__quantile(&t.lat, 0.999)), ns_to_us(t.lat.count ? t.lat.max : 0),
               hist__mean(&t.lat) / 1000.0);
        ADD(" conns=%" PRIu64 " subs=%" PRIu64 " failed=%" PRIu64 " dropped=%" PRIu64
            " sent=%" PRIu64 " pub_msgs_per_s=%.1f expected=%" PRIu64 " received=%" PRIu64
            " loss=%.6f"
            " deliveries_per_s=%.1f msgs_per_s=%.1f span_s=%.3f p50_us=%.1f p99_us=%.1f"
            " p999_us=%.1f max_us=%.1f mean_us=%.1f other_msgs=%" PRIu64 " pub_failed=%u",
            t.up, t.subs, t.failed, t.dropped, t.sent, pps, expected, t.ops, loss, dps, dps, span,
            ns_to_us(hist__quantile(&t.lat, 0.5)), ns_to_us(hist__quantile(&t.lat, 0.99)),
            ns_to_us(hist__quantile(&t.lat, 0.999)), ns_to_us(t.lat.count ? t.lat.max : 0),
            hist__mean(&t.lat) / 1000.0, t.other_msgs, t.pub_failed);
        break;
    }
    case SC_CHURN: {
        double cps = win_s > 0 ? (double)t.ops / win_s : 0;
        printf("churn: %" PRIu64 " cycles (connect%s, close) in %.3f s = %.0f conn/s, %" PRIu64
               " failed, concurrency %u\n",
               t.ops, cfg->wait_welcome ? ", welcome" : "", win_s, cps, t.failed, cfg->c);
        printf("churn: up latency us p50 %.1f p99 %.1f; cycle us p50 %.1f p99 %.1f\n",
               ns_to_us(hist__quantile(&t.conn, 0.5)), ns_to_us(hist__quantile(&t.conn, 0.99)),
               ns_to_us(hist__quantile(&t.lat, 0.5)), ns_to_us(hist__quantile(&t.lat, 0.99)));
        ADD(" conc=%u cycles=%" PRIu64 " conn_per_s=%.1f failed=%" PRIu64 " dropped=%" PRIu64
            " duration_s=%.3f conn_p50_us=%.1f conn_p99_us=%.1f cycle_p50_us=%.1f"
            " cycle_p99_us=%.1f close_timeouts=%" PRIu64,
            cfg->c, t.ops, cps, t.failed, t.dropped, win_s, ns_to_us(hist__quantile(&t.conn, 0.5)),
            ns_to_us(hist__quantile(&t.conn, 0.99)), ns_to_us(hist__quantile(&t.lat, 0.5)),
            ns_to_us(hist__quantile(&t.lat, 0.99)), t.close_timeouts);
        break;
    }
    }

    if (cfg->pid) {
        if (have_cpu) {
            double per = t.ops ? (double)(st->cpu1_us - st->cpu0_us) / (double)t.ops : 0;
            const char *unit = cfg->scenario == SC_FANOUT  ? "delivery"
                               : cfg->scenario == SC_CHURN ? "connection"
                               : cfg->scenario == SC_ECHO  ? "echo"
                                                           : "";
            printf("server: cpu %.2f s in the window", srv_cpu_s);
            if (*unit)
                printf(" (%.2f us per %s)", per, unit);
            printf("\n");
            ADD(" srv_cpu_s=%.3f", srv_cpu_s);
            if (*unit)
                ADD(" srv_cpu_us_per_msg=%.3f", per);
        } else {
            printf("server: cannot read /proc/%d (gone?)\n", (int)cfg->pid);
        }
        if (cfg->scenario != SC_IDLE && st->rss_after_kb >= 0 && st->rss_end_kb >= 0)
            ADD(" rss_after_kb=%" PRId64 " rss_end_kb=%" PRId64, st->rss_after_kb, st->rss_end_kb);
    }
    printf("client: cpu %.2f s in the window (%.2f s total), peak rss %.1f MiB (all workers), "
           "%.1f MB in, %.1f MB out\n",
           cli_cpu_s, (double)t.cpu_total_us / 1e6, (double)t.maxrss_kb / 1024,
           (double)t.bytes_in / 1e6, (double)t.bytes_out / 1e6);
    ADD(" cli_cpu_s=%.3f cli_cpu_total_s=%.3f cli_rss_kb=%" PRIu64 " timed_out=%u", cli_cpu_s,
        (double)t.cpu_total_us / 1e6, t.maxrss_kb, t.timed_out);
    if (cfg->n_reply) {
        printf("client: %" PRIu64 " messages answered by --reply rules\n", t.replies);
        ADD(" replies=%" PRIu64, t.replies);
    }
    if (cfg->scenario != SC_IDLE && t.ops)
        ADD(" cli_cpu_us_per_msg=%.3f", (double)t.cpu_window_us / (double)t.ops);
#undef ADD
    printf("%s\n", res);
    fflush(stdout);

    bool ok = all_done && (cfg->scenario == SC_CHURN ? t.ops > 0 : t.up > 0);
    if (cfg->scenario == SC_FANOUT && (t.pub_failed || !t.sent))
        ok = false;
    return ok ? 0 : 1;
}

/* Raises the soft descriptor limit to the hard one. Returns the new soft limit. */
static uint64_t raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

static uint32_t share_of(uint32_t total, uint32_t k, uint32_t procs)
{
    return total / procs + (k < total % procs ? 1 : 0);
}

int main(int argc, char **argv)
{
    static bench_cfg_t cfg;
    static wk_t wks[BENCH_MAX_PROCS];
    static bench_share_t shares[BENCH_MAX_PROCS];
    srv_stats_t st = {-1, -1, -1, -1, -1, -1, -1, -1};
    int rc = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    int pr = parse_args(argc, argv, &cfg, &rc);
    if (pr > 0)
        return rc;
    if (pr < 0)
        return 2;

    /* Each worker's share, and whether a process can hold it. */
    uint64_t limit = raise_nofile();
    bool by_n = cfg.scenario == SC_IDLE || cfg.scenario == SC_FANOUT;
    uint32_t total = by_n ? cfg.n : cfg.c;
    uint64_t first = 0;
    uint32_t max_share = 0;
    for (uint32_t k = 0; k < cfg.procs; k++) {
        bench_share_t *s = &shares[k];
        s->index = k;
        s->n = by_n ? share_of(cfg.n, k, cfg.procs) : 0;
        s->c = by_n ? 0 : share_of(cfg.c, k, cfg.procs);
        s->first_global = first;
        s->connect_rate = cfg.connect_rate / cfg.procs;
        s->has_pub = cfg.scenario == SC_FANOUT && k == 0;
        first += by_n ? s->n : s->c;
        uint32_t need = (by_n ? s->n : s->c) + (s->has_pub ? 1 : 0);
        if (need > max_share)
            max_share = need;
    }
    if ((uint64_t)max_share + FD_RESERVE > limit) {
        uint64_t per = limit > FD_RESERVE ? limit - FD_RESERVE : 1;
        fprintf(stderr,
                "wshub-bench: %u connections per process exceed the descriptor limit %" PRIu64
                " (RLIMIT_NOFILE hard limit); use --procs %" PRIu64 " or more\n",
                max_share, limit, ((uint64_t)total + per - 1) / per);
        return 2;
    }
    if (cfg.sources == 0 && total > 28000)
        fprintf(stderr, "wshub-bench: note: more than ~28k connections from one source address "
                        "to one server port may run out of ephemeral ports: use --sources\n");

    /* The global deadline: the slowest worker's connect time at the paced rate, plus the
     * phases, plus slack. Workers stop by themselves then; the coordinator kills them 10 s
     * later if they have not. */
    double connect_budget = (double)max_share / (cfg.connect_rate / cfg.procs) + cfg.timeout + 5;
    double budget = connect_budget + cfg.warmup + cfg.duration + 2 * cfg.timeout + 15;
    if (cfg.scenario == SC_FANOUT)
        budget += 3 + (cfg.rate > 0 ? 2 / cfg.rate : 0);
    uint64_t t0 = bench__now_ns();
    cfg.deadline_ns = t0 + (uint64_t)(budget * 1e9);

    signal(SIGPIPE, SIG_IGN);
    if (cfg.pid) {
        st.rss_before_kb = procstat__rss_kb(cfg.pid);
        st.anon_before_kb = procstat__anon_kb(cfg.pid);
        if (st.rss_before_kb < 0) {
            fprintf(stderr, "wshub-bench: --pid %d: cannot read /proc/%d/status\n", (int)cfg.pid,
                    (int)cfg.pid);
            return 2;
        }
    }

    fflush(stdout);
    fflush(stderr);
    for (uint32_t k = 0; k < cfg.procs; k++) {
        int up[2], down[2];
        if (pipe2(up, O_CLOEXEC) < 0 || pipe2(down, O_CLOEXEC) < 0) {
            perror("wshub-bench: pipe");
            return 1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("wshub-bench: fork");
            return 1;
        }
        if (pid == 0) {
            for (uint32_t j = 0; j < k; j++) {
                close(wks[j].up);
                close(wks[j].down);
            }
            close(up[0]);
            close(down[1]);
            shares[k].to_parent = up[1];
            shares[k].from_parent = down[0];
            exit(worker__run(&cfg, &shares[k])); /* exit, not _exit: LSan checks it */
        }
        close(up[1]);
        close(down[0]);
        wks[k].pid = pid;
        wks[k].up = up[0];
        wks[k].down = down[1];
    }

    bool go_sent = false, cpu0_taken = false, measured = false;
    uint64_t t_go = 0;
    for (;;) {
        struct pollfd pfd[BENCH_MAX_PROCS];
        uint32_t map[BENCH_MAX_PROCS], np = 0, n_ready = 0, n_meas = 0, n_fin = 0;
        for (uint32_t k = 0; k < cfg.procs; k++) {
            if (wks[k].ready || wks[k].dead)
                n_ready++;
            if (wks[k].measured || wks[k].dead)
                n_meas++;
            if (wks[k].done || wks[k].dead) {
                n_fin++;
                continue;
            }
            pfd[np].fd = wks[k].up;
            pfd[np].events = POLLIN;
            map[np++] = k;
        }
        uint64_t now = bench__now_ns();
        if (!go_sent && n_ready == cfg.procs) {
            if (cfg.pid) {
                st.rss_after_kb = procstat__rss_kb(cfg.pid);
                st.anon_after_kb = procstat__anon_kb(cfg.pid);
                st.cpu_go_us = procstat__cpu_us(cfg.pid);
            }
            t_go = now;
            for (uint32_t k = 0; k < cfg.procs; k++) {
                if (!wks[k].dead && write(wks[k].down, "G", 1) != 1)
                    wks[k].dead = true;
            }
            go_sent = true;
        }
        if (go_sent && !cpu0_taken && now >= t_go + (uint64_t)(cfg.warmup * 1e9)) {
            st.cpu0_us = cfg.pid ? procstat__cpu_us(cfg.pid) : -1;
            cpu0_taken = true;
        }
        if (go_sent && !measured && n_meas == cfg.procs) {
            if (!cpu0_taken) {
                st.cpu0_us = cfg.pid ? procstat__cpu_us(cfg.pid) : -1;
                cpu0_taken = true;
            }
            if (cfg.pid) {
                st.cpu1_us = procstat__cpu_us(cfg.pid);
                st.rss_end_kb = procstat__rss_kb(cfg.pid);
            }
            measured = true;
        }
        if (n_fin == cfg.procs)
            break;
        if (now > cfg.deadline_ns + 10 * 1000000000ull) {
            fprintf(stderr, "wshub-bench: workers did not finish by the deadline; killing them\n");
            for (uint32_t k = 0; k < cfg.procs; k++) {
                if (!wks[k].done && !wks[k].dead) {
                    kill(wks[k].pid, SIGKILL);
                    wks[k].dead = true;
                }
            }
            break;
        }
        int wait_ms = 100;
        if (go_sent && !cpu0_taken) {
            uint64_t at = t_go + (uint64_t)(cfg.warmup * 1e9);
            wait_ms = at > now ? (int)((at - now) / 1000000 + 1) : 0;
            if (wait_ms > 100)
                wait_ms = 100;
        }
        int n = poll(pfd, np, wait_ms);
        if (n < 0 && errno != EINTR) {
            perror("wshub-bench: poll");
            break;
        }
        for (uint32_t i = 0; n > 0 && i < np; i++) {
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                read_worker(&wks[map[i]]);
        }
    }
    for (uint32_t k = 0; k < cfg.procs; k++) {
        int status;
        close(wks[k].up);
        close(wks[k].down);
        while (waitpid(wks[k].pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!wks[k].done)
            fprintf(stderr, "wshub-bench: worker %u (pid %d) ended without a result\n", k,
                    (int)wks[k].pid);
    }
    return report(&cfg, wks, &st, (double)(bench__now_ns() - t0) / 1e9);
}
