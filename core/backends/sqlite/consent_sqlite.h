/*
 * consent_sqlite.h: consent statements in the SQLite store, an
 * implementation of the repository of domain/consent.h (table consents).
 * Internal to the SQLite backend: inside a commit its statements run in
 * the transaction store_sqlite.c opened.
 */
#ifndef OG_CORE_CONSENT_SQLITE_H
#define OG_CORE_CONSENT_SQLITE_H

#include <sqlite3.h>

#include "domain/consent.h"

typedef struct og__consentdb_s og__consentdb_t;

/* Prepares the statements; NULL with sqlite3_errmsg(db) set on error. */
og__consentdb_t *og__consentdb_prepare(sqlite3 *db);
void og__consentdb_free(og__consentdb_t *s);

/* The repository (lives as long as s). */
og__consent_repo_t *og__consentdb_repo(og__consentdb_t *s);

#endif /* OG_CORE_CONSENT_SQLITE_H */
