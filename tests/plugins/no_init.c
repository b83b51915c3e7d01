/* Loader fixture: a valid header but no init. Expected: "plugin NAME: descriptor has no init
 * function". */
#include <wshub/sdk.h>

WSHUB_PLUGIN(.name = "no_init", .version = "1.0", .init = NULL);
