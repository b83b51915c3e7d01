/*
 * mem: allocation wrappers that log and abort on out-of-memory (Redis zmalloc, h2o "or dies"),
 * so core functions and host slots never have a NOMEM path to get wrong.
 */
#ifndef WSHUB_MEM_H
#define WSHUB_MEM_H

#include <stddef.h>

void *mem__alloc(size_t n);
void *mem__calloc(size_t n, size_t size);
void *mem__realloc(void *p, size_t n);
char *mem__strdup(const char *s);
char *mem__strndup(const char *s, size_t n);

#endif
