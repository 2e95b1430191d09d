/*
 * traits_sqlite.h: customers' traits in the SQLite store, an
 * implementation of the repository of domain/traits.h (table traits).
 * Internal to the SQLite backend: inside a commit its statements run in
 * the transaction store_sqlite.c opened.
 */
#ifndef OG_CORE_TRAITS_SQLITE_H
#define OG_CORE_TRAITS_SQLITE_H

#include <sqlite3.h>

#include "domain/traits.h"

typedef struct og__traitdb_s og__traitdb_t;

/* Prepares the statements; NULL with sqlite3_errmsg(db) set on error. */
og__traitdb_t *og__traitdb_prepare(sqlite3 *db);
void og__traitdb_free(og__traitdb_t *s);

/* The repository (lives as long as s). */
og__trait_repo_t *og__traitdb_repo(og__traitdb_t *s);

#endif /* OG_CORE_TRAITS_SQLITE_H */
