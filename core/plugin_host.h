/* plugin_host: the one wshub_host_api_t instance: thin adapters to the core modules. */
#ifndef WSHUB_PLUGIN_HOST_H
#define WSHUB_PLUGIN_HOST_H

#include <wshub/sdk.h>

const wshub_host_api_t *plugin_host__api(void);
/* The text of a wshub_rc: "WSHUB_ERR_STATE (not allowed now)" (the strerror slot). */
const char *plugin_host__strerror(int rc);
/* Maps a wshub_rc to the error code string of the protocol ("forbidden", ...). */
const char *plugin_host__rc_code(int rc);

#endif
