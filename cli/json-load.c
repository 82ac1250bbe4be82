/* SPDX-License-Identifier: MIT */
/*
 * libcjson, loaded the first time a command builds or reads JSON (dlopen
 * of CJSON_SONAME), not linked: a one-shot command that prints only text
 * (create, rm, write, read, version) then starts without the dynamic
 * loader mapping and relocating one more library, which costs such a
 * command about a twentieth of its run.
 *
 * The functions below carry cJSON's own names and prototypes (checked by
 * the compiler against <cjson/cJSON.h>), so ashmemctl's code and the
 * parts of libashmem linked into it call them as before; each passes the
 * call on to the library's function, looked up in the library itself.
 * The library is the one the package depends on (libcjson1): when it
 * cannot be loaded, ashmemctl says so and exits 127, as the dynamic loader
 * does for a missing library.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lib/internal/dload.h"

#define CJSON_SONAME "libcjson.so.1"
/* where the build found it (Makefile) */
#ifndef CJSON_PATH
#define CJSON_PATH ""
#endif

/* name, return type, parameters, the call's arguments */
#define CJSON_CALLS(X)                                                          \
        X(cJSON_AddArrayToObject, cJSON *,                                      \
          (cJSON *const object, const char *const name), (object, name))        \
        X(cJSON_AddBoolToObject, cJSON *,                                       \
          (cJSON *const object, const char *const name, const cJSON_bool boolean), \
          (object, name, boolean))                                              \
        X(cJSON_AddItemReferenceToArray, cJSON_bool,                            \
          (cJSON *array, cJSON *item), (array, item))                           \
        X(cJSON_AddItemToArray, cJSON_bool, (cJSON *array, cJSON *item), (array, item)) \
        X(cJSON_AddItemToObject, cJSON_bool,                                    \
          (cJSON *object, const char *string, cJSON *item), (object, string, item)) \
        X(cJSON_AddNullToObject, cJSON *,                                       \
          (cJSON *const object, const char *const name), (object, name))        \
        X(cJSON_AddNumberToObject, cJSON *,                                     \
          (cJSON *const object, const char *const name, const double number),   \
          (object, name, number))                                               \
        X(cJSON_AddObjectToObject, cJSON *,                                     \
          (cJSON *const object, const char *const name), (object, name))        \
        X(cJSON_AddStringToObject, cJSON *,                                     \
          (cJSON *const object, const char *const name, const char *const string), \
          (object, name, string))                                               \
        X(cJSON_CreateArray, cJSON *, (void), ())                               \
        X(cJSON_CreateBool, cJSON *, (cJSON_bool boolean), (boolean))           \
        X(cJSON_CreateNull, cJSON *, (void), ())                                \
        X(cJSON_CreateNumber, cJSON *, (double num), (num))                     \
        X(cJSON_CreateObject, cJSON *, (void), ())                              \
        X(cJSON_CreateRaw, cJSON *, (const char *raw), (raw))                   \
        X(cJSON_CreateString, cJSON *, (const char *string), (string))          \
        X(cJSON_DetachItemFromArray, cJSON *, (cJSON *array, int which), (array, which)) \
        X(cJSON_DetachItemViaPointer, cJSON *,                                  \
          (cJSON *parent, cJSON *const item), (parent, item))                   \
        X(cJSON_Duplicate, cJSON *, (const cJSON *item, cJSON_bool recurse), (item, recurse)) \
        X(cJSON_GetArraySize, int, (const cJSON *array), (array))               \
        X(cJSON_GetObjectItemCaseSensitive, cJSON *,                            \
          (const cJSON *const object, const char *const string), (object, string)) \
        X(cJSON_IsArray, cJSON_bool, (const cJSON *const item), (item))         \
        X(cJSON_IsBool, cJSON_bool, (const cJSON *const item), (item))          \
        X(cJSON_IsNumber, cJSON_bool, (const cJSON *const item), (item))        \
        X(cJSON_IsObject, cJSON_bool, (const cJSON *const item), (item))        \
        X(cJSON_IsRaw, cJSON_bool, (const cJSON *const item), (item))           \
        X(cJSON_IsString, cJSON_bool, (const cJSON *const item), (item))        \
        X(cJSON_IsTrue, cJSON_bool, (const cJSON *const item), (item))          \
        X(cJSON_Parse, cJSON *, (const char *value), (value))                   \
        X(cJSON_PrintUnformatted, char *, (const cJSON *item), (item))

/* the same, for those that return nothing */
#define CJSON_VOID_CALLS(X)                                                     \
        X(cJSON_DeleteItemFromObjectCaseSensitive,                              \
          (cJSON *object, const char *string), (object, string))

static struct {
#define X(f, type, params, args) type (*f) params;
        CJSON_CALLS(X)
#undef X
#define X(f, params, args) void (*f) params;
        CJSON_VOID_CALLS(X)
#undef X
        void (*cJSON_Delete)(cJSON *item);
} cj;

static const struct dload_sym cj_syms[] = {
#define X(f, ...) DLOAD_SYM(f, cj.f),
        CJSON_CALLS(X)
        CJSON_VOID_CALLS(X)
        X(cJSON_Delete)
#undef X
};

static pthread_once_t cj_once = PTHREAD_ONCE_INIT;

/* The library and its functions, for the life of the process. */
static void cj_load(void)
{
        static struct dload lib = { CJSON_SONAME, CJSON_PATH, RTLD_LAZY | RTLD_LOCAL, 0, "" };
        char msg[512];
        int n;

        if (dload(&lib, cj_syms, sizeof(cj_syms) / sizeof(cj_syms[0])) == 0)
                return;
        n = snprintf(msg, sizeof(msg), "ashmemctl: cannot load the JSON library: %s\n", lib.error);
        /* as the dynamic loader does for a library it cannot load:
         * nothing past this point can build its output (what is printed
         * already stays) */
        (void)fflush(stdout);
        if (n > 0)
                (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n
                                                                       : sizeof(msg) - 1);
        _exit(127);
}

#define X(f, type, params, args)                                                \
        type f params                                                           \
        {                                                                       \
                (void)pthread_once(&cj_once, cj_load);                          \
                return cj.f args;                                               \
        }
CJSON_CALLS(X)
#undef X

#define X(f, params, args)                                                      \
        void f params                                                           \
        {                                                                       \
                (void)pthread_once(&cj_once, cj_load);                          \
                cj.f args;                                                      \
        }
CJSON_VOID_CALLS(X)
#undef X

/* Deleting nothing (every cleanup path of a command that printed text
 * only) needs no library. */
void cJSON_Delete(cJSON *item)
{
        if (!item)
                return;
        (void)pthread_once(&cj_once, cj_load);
        cj.cJSON_Delete(item);
}
