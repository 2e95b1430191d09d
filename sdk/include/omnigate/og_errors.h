/*
 * og_errors.h: the one error enum of the SDK.
 *
 * Rules (see sdk/COMPATIBILITY.md):
 * - OG_OK is 0, errors are negative with explicit values, OG_PENDING is the
 *   only positive code.
 * - Codes are append-only: a new code takes the next free value, a retired
 *   code keeps its number and is never reused.
 * - Callers must handle values they do not know (treat them as failures).
 */
#ifndef OMNIGATE_OG_ERRORS_H
#define OMNIGATE_OG_ERRORS_H

#include <omnigate/og_common.h>

OG_BEGIN_DECLS

/* XX(name, value, description). One table, so that the enum, og_strerror()
 * and og_err_name() cannot drift apart. */
#define OG_ERRNO_MAP(XX)                                                       \
    XX(OK, 0, "success")                                                       \
    XX(PENDING, 1, "operation continues, result comes later")                  \
    XX(ERR_INVALID, -1, "invalid argument or input")                           \
    XX(ERR_NOMEM, -2, "out of memory")                                         \
    XX(ERR_NOT_FOUND, -3, "not found")                                         \
    XX(ERR_BUSY, -4, "busy, try again later")                                  \
    XX(ERR_RETRY, -5, "transient failure, retry later")                        \
    XX(ERR_REJECTED, -6, "permanently rejected")                               \
    XX(ERR_UNSUPPORTED, -7, "not supported by this host")                      \
    XX(ERR_TYPE, -8, "value has another type")                                 \
    XX(ERR_RANGE, -9, "value out of range")                                    \
    XX(ERR_IO, -10, "input/output error")                                      \
    XX(ERR_TIMEOUT, -11, "timed out")                                          \
    XX(ERR_CANCELLED, -12, "cancelled")                                        \
    XX(ERR_STOPPING, -13, "shutting down, no new work taken")                  \
    XX(ERR_PROTOCOL, -14, "protocol error")                                    \
    XX(ERR_TOO_LARGE, -15, "too large")                                        \
    XX(ERR_ABI, -16, "ABI mismatch")                                           \
    XX(ERR_CONFIG, -17, "configuration error")                                 \
    XX(ERR_INTERNAL, -18, "internal error")                                    \
    XX(ERR_CONFLICT, -19, "conflicts with an earlier event of the same id")

/* Result of almost every SDK call. */
typedef enum og_err_e {
#define OG__ERR_ENUM(name, value, text) OG_##name = (value),
    OG_ERRNO_MAP(OG__ERR_ENUM)
#undef OG__ERR_ENUM
        OG__ERR_RESERVED_END = -1000 /* keeps the enum signed; not a code */
} og_err_t;

/*
 * og_strerror: a static English description of code. Unknown codes give
 * "unknown error". Returns a string with static storage; never NULL.
 * Any thread.
 */
static inline const char *og_strerror(og_err_t code)
{
    switch ((int)code) {
#define OG__ERR_STR(name, value, text)                                         \
    case (value): return (text);
        OG_ERRNO_MAP(OG__ERR_STR)
#undef OG__ERR_STR
    default: return "unknown error";
    }
}

/*
 * og_err_name: the symbolic name of code without the OG_ prefix
 * ("ERR_BUSY"), or "UNKNOWN". Static storage; never NULL. Any thread.
 */
static inline const char *og_err_name(og_err_t code)
{
    switch ((int)code) {
#define OG__ERR_NAME(name, value, text)                                        \
    case (value): return #name;
        OG_ERRNO_MAP(OG__ERR_NAME)
#undef OG__ERR_NAME
    default: return "UNKNOWN";
    }
}

OG_END_DECLS

#endif /* OMNIGATE_OG_ERRORS_H */
