/*
 * sqlite_ckpt.c: the checkpointer thread (sqlite_ckpt.h).
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "backends/sqlite/sqlite_ckpt.h"
#include "base/util.h"

/* The thread checkpoints once the WAL holds this many frames (pages); the
 * committing connection itself once it holds HARD_FRAMES. */
#define FRAMES 4000
#define HARD_FRAMES (4 * FRAMES)
#define DEFAULT_FRAMES 1000 /* SQLite's own, without the thread */

struct og__ckpt_s {
    sqlite3 *db; /* the thread's connection */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int want, stop, running;
};

static void *run(void *arg)
{
    og__ckpt_t *k = arg;

    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->want && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        k->want = 0;
        pthread_mutex_unlock(&k->mu);
        /* Passive: copies what no reader needs and never waits for the
         * writer; a failure (a full disk) is tried again at the next
         * signal, and the hard bound stops the WAL from growing on. */
        sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* sqlite3_wal_hook: after each commit, with the WAL's size in frames. */
static int written(void *arg, sqlite3 *db, const char *name, int frames)
{
    og__ckpt_t *k = arg;

    (void)name;
    if (frames >= (k->running ? HARD_FRAMES : DEFAULT_FRAMES)) {
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
    } else if (k->running && frames >= FRAMES) {
        pthread_mutex_lock(&k->mu);
        k->want = 1;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK;
}

og__ckpt_t *og__ckpt_start(sqlite3 *db, const char *path, const char *sync)
{
    og__ckpt_t *k = og__xcalloc(1, sizeof(*k));

    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (sqlite3_open_v2(path, &k->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) == SQLITE_OK &&
        sqlite3_exec(k->db, sync, NULL, NULL, NULL) == SQLITE_OK &&
        sqlite3_exec(k->db, "PRAGMA wal_autocheckpoint = 0", NULL, NULL,
                     NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(k->db, 5000);
        k->running = pthread_create(&k->thread, NULL, run, k) == 0;
    }
    sqlite3_wal_hook(db, written, k); /* replaces the automatic one */
    return k;
}

void og__ckpt_stop(og__ckpt_t *k)
{
    if (k == NULL)
        return;
    if (k->running) {
        pthread_mutex_lock(&k->mu);
        k->stop = 1;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->thread, NULL);
    }
    sqlite3_close(k->db);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}
