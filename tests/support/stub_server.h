/*
 * stub_server: the wshub core without listeners, admin, signals or plugins, for unit tests of
 * the loop code (conn, group, router, timer). g_srv is initialised with server__init_core from a
 * YAML text; connections are made over socketpair(AF_UNIX, SOCK_STREAM) and handed to
 * conn__accept as if they came from 127.0.0.1; the test drives the loop with non-blocking
 * iterations (never sleeps) and talks to the server through a ws_test_client.
 *
 * One stub server per process at a time (g_srv is global). With libcheck's default fork mode,
 * start it in a checked fixture so each test gets a fresh core.
 */
#ifndef WSHUB_STUB_SERVER_H
#define WSHUB_STUB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "server.h"
#include "ws_test_client.h"

/* Default bound on loop iterations for the waiting helpers. */
#define STUB_MAX_ITER 200

/* Loads `yaml` (a whole config document) and initialises the core. Returns 0, or -1 with the
 * reason in err. */
int stub_server__start(const char *yaml, char *err, size_t err_len);
/* Frees every connection (CONN_CLOSE hooks run), routes, hooks, and the core. */
void stub_server__stop(void);
config_t *stub_server__cfg(void);

/* One non-blocking loop iteration (EVLOOP_NONBLOCK). */
void stub_server__step(void);
/* Iterates until cond(ud) holds or max_iter iterations ran. Returns whether cond held. */
bool stub_server__run_until(bool (*cond)(void *ud), void *ud, int max_iter);

/* A new connection: the server end of a socketpair goes to conn__accept, the client end is
 * handed to `cl` (wsc__init). Returns the connection id, 0 when the server refused it. */
uint64_t stub_server__connect(wsc_t *cl);
/* Same with a socket type: SOCK_STREAM, or SOCK_SEQPACKET, which keeps the boundaries of each
 * write/writev so a test can see how the server grouped its output into system calls. */
uint64_t stub_server__connect_type(wsc_t *cl, int type);
/* The connection with this id while it holds a socket (any state), else NULL. */
wshub_conn_t *stub_server__conn(uint64_t id);

/* Connects, sends an upgrade request for `path` (with extra header lines), and iterates until
 * the response head arrives. Returns the HTTP status, or -1 (no/malformed response). The head
 * is copied into head/head_cap when not NULL; the id into *id when not NULL. */
int stub_server__open(wsc_t *cl, const char *path, const char *extra_headers, uint64_t *id,
                      char *head, size_t head_cap);
int stub_server__open_type(wsc_t *cl, int type, const char *path, const char *extra_headers,
                           uint64_t *id, char *head, size_t head_cap);

/* Iterates (reading the client side each time) until a frame can be taken. Returns 1 with *f
 * filled, 0 when none came within max_iter (or the socket reached EOF first), -1 malformed. */
int stub_server__recv(wsc_t *cl, wsc_frame_t *f, int max_iter);
/* Iterates until the client reads EOF (or an error). Frames before it are left buffered. */
bool stub_server__wait_eof(wsc_t *cl, int max_iter);

#endif
