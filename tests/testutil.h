/*
 * testutil.h: helpers shared by the CUnit suites: temporary directories,
 * files, the built plugins, MessagePack envelopes and child processes.
 */
#ifndef OG_TESTUTIL_H
#define OG_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <CUnit/Basic.h>

/* Runs the registered suites with the basic interface; returns the exit
 * code for the automake harness (0 when every assertion passed). */
int tu_run(void);

/* A new temporary directory (caller frees); removed by tu_rmrf(). */
char *tu_mkdtemp(void);
void tu_rmrf(const char *path);

int tu_write(const char *path, const char *text);
/* Writes text to dir/rel (CU-asserts that it worked). */
void tu_put(const char *dir, const char *rel, const char *text);
/* Makes dir empty again with the subdirectories given (NULL-ended). */
void tu_fresh(const char *dir, const char *const *subdirs);
/* True when errs holds "dir/rel:line: msg..." ("dir/rel: msg..." for line
 * 0); prints what it has otherwise. */
struct og__errlist_s;
int tu_has_error(const struct og__errlist_s *errs, const char *dir,
                 const char *rel, int line, const char *msg);
int tu_write_bytes(const char *path, const void *buf, size_t len);
/* Whole file as a NUL-terminated string (caller frees), or NULL. */
char *tu_read(const char *path, size_t *len);
int tu_contains(const char *path, const char *needle);
/* Occurrences of needle in the string s. */
size_t tu_count_str(const char *s, const char *needle);
/* Occurrences of needle in the file. */
size_t tu_count(const char *path, const char *needle);
/* Files in dir whose names end with suffix. */
size_t tu_count_files(const char *dir, const char *suffix);
/* First file name (sorted) in dir ending with suffix, joined to dir. */
char *tu_first_file(const char *dir, const char *suffix);

/* Path of a built plugin .so (tests/plugins/.libs/NAME.so or the example's
 * dropdir.so) in the build tree; caller frees. */
char *tu_built_plugin(const char *name);
/* Copies built plugins into dir with mode 0755. NULL-terminated names. */
int tu_install_plugins(const char *dir, const char *const *names);
/* Path of the built omnigated; caller frees. */
char *tu_daemon_path(void);

/* Starts an envelope map of 2 + extra pairs with "v": 1 and "type" packed;
 * sb and pk are initialised here. The caller packs the extra pairs. */
struct msgpack_sbuffer;
struct msgpack_packer;
void tu_pack_head(struct msgpack_sbuffer *sb, struct msgpack_packer *pk,
                  const char *type, size_t extra);

/* A minimal valid envelope {v:1, type, id?} (caller frees). */
uint8_t *tu_envelope(const char *type, const char *id, size_t *len);

/* Starts argv with stdout+stderr appended to log; returns the pid. */
pid_t tu_spawn(char *const argv[], const char *log);
/* Waits up to ms for pid; returns its exit status (0-255), 128+signal,
 * or -1 on timeout (the child is left running). */
int tu_wait(pid_t pid, int ms);
/* Polls until the file contains needle count times, or ms passed. */
int tu_wait_log(const char *path, const char *needle, size_t count, int ms);
/* Polls until dir holds at least n files ending with suffix. */
int tu_wait_files(const char *dir, const char *suffix, size_t n, int ms);
void tu_sleep_ms(int ms);

/* ---- shop events through the store, as the daemon commits them ------ */

struct og_event_s;
struct og__store_s;
struct og__journeys_s;

/* An accepted event of type from the instance "web": a verified email
 * key, the entity {kind: cart, id: cart} when cart is not NULL, and props
 * {cart_id: cart_id or "-", lines: [{name: Boots, qty: 2}]}. */
struct og_event_s *tu_shop_event(const char *type, const char *email,
                                 const char *cart, const char *cart_id);

/* Commits evs (n of them, released here) in one transaction as the
 * daemon does: customers resolved from their keys, journeys (may be
 * NULL) matched at now_ms. customers (may be NULL) gets each event's
 * customer. 0 when every event was stored as new. */
int tu_commit_events(struct og__store_s *st, const struct og__journeys_s *js,
                     struct og_event_s **evs, size_t n, uint64_t now_ms,
                     char (*customers)[40]);

#endif /* OG_TESTUTIL_H */
