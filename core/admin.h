/* admin: the admin HTTP listener (libevent evhttp): /health, /ready, /metrics. */
#ifndef WSHUB_ADMIN_H
#define WSHUB_ADMIN_H

/* Binds the admin listener; returns 0, or -1 (logged). Writes the bound "host:port" to out. */
int admin__start(char *bound, unsigned long bound_len);
void admin__stop(void);

#endif
