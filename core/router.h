/*
 * router: message routing. On the JSON path a message is an envelope {"type": ..., "id": ...}
 * parsed with json-c and dispatched to the plugin that owns the type (core types: ping);
 * raw paths hand every message to their plugin. Also the protocol replies (welcome, ack, error).
 */
#ifndef WSHUB_ROUTER_H
#define WSHUB_ROUTER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

struct route_path {
    char *path;
    wshub_plugin_t *owner;
    wshub_msg_cb cb;
    void *ud;
};

int router__route_add(wshub_plugin_t *owner, const char *type, wshub_msg_cb cb, void *ud);
int router__path_add(wshub_plugin_t *owner, const char *path, wshub_msg_cb cb, void *ud);
void router__remove_owner(wshub_plugin_t *owner);
const struct route_path *router__path(const char *path);
void router__clear(void);

/* A complete message from c (data writable, data[len] writable too). */
void router__on_message(wshub_conn_t *c, int opcode, uint8_t *data, size_t len);
/* A message over max_message_size on a JSON path (discarded): answers too_large. */
void router__on_oversize(wshub_conn_t *c, size_t len);

void router__send_welcome(wshub_conn_t *c);
int router__send_ack(wshub_conn_t *c, const char *id_json, const char *fields_json);
int router__send_error(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt, ...)
    WSHUB_PRINTF(4, 5);
int router__send_errorv(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt,
                        va_list ap) WSHUB_PRINTF(4, 0);
/* WSHUB_EV_WELCOME's welcome_add slot. */
int router__welcome_add(wshub_ev_welcome_t *ev, const char *key, const char *json);
/* The exact wire texts of ack and error replies (shared with tests/support/fake_host.c, so a
 * plugin tested against the fake sees the bytes the server sends). */
struct strbuf;
void router__format_ack(struct strbuf *b, const char *id_json, const char *fields_json);
void router__format_error(struct strbuf *b, const char *id_json, const char *code, const char *fmt,
                          va_list ap) WSHUB_PRINTF(4, 0);

#endif
