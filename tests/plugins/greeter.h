/*
 * The "greeter" service shared by the provider and consumer fixtures: a versioned vtable, as
 * real services are (a new version would be a new struct, greeter_v2).
 */
#ifndef WSHUB_TEST_GREETER_H
#define WSHUB_TEST_GREETER_H

#define GREETER_SERVICE "greeter"

typedef struct greeter_v1 {
    /** @return [static] a greeting for `who`. */
    const char *(*greet)(const char *who);
} greeter_v1_t;

#endif
