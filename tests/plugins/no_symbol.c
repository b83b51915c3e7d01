/*
 * Loader fixture: a shared object that is not a wshub plugin: it exports a function but no
 * `wshub_plugin_entry`. Expected: "plugin NAME: PATH does not export wshub_plugin_entry (not a
 * wshub plugin)".
 */
#include <wshub/sdk.h>

WSHUB_EXPORT int wshub_not_a_plugin(void);

WSHUB_EXPORT int wshub_not_a_plugin(void)
{
    return 42;
}
