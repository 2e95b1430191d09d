/*
 * sqlite_ckpt.h: WAL checkpoints off the commit path. A thread with its
 * own connection copies the WAL into the database file while commits go
 * on; the committing connection only checkpoints itself (and waits) when
 * the WAL grows past a hard bound because the thread cannot keep up.
 *
 * SQLite's default checkpoints on the committing connection every 1000
 * pages, which puts a random write of every changed page and an fsync of
 * the database into the commit that crosses the mark.
 */
#ifndef OG_CORE_SQLITE_CKPT_H
#define OG_CORE_SQLITE_CKPT_H

#include <sqlite3.h>

typedef struct og__ckpt_s og__ckpt_t;

/* Takes over db's automatic checkpoints (sqlite3_wal_hook). sync is the
 * "PRAGMA synchronous = ..." statement db runs with. Never NULL: when the
 * thread cannot start, db checkpoints itself as SQLite would. */
og__ckpt_t *og__ckpt_start(sqlite3 *db, const char *path, const char *sync);

/* Stops the thread and closes its connection; before db is closed. */
void og__ckpt_stop(og__ckpt_t *k);

#endif /* OG_CORE_SQLITE_CKPT_H */
