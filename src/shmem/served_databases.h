/*
 * served_databases.h
 *		The databases the workers serve, as the launcher, the workers and
 *		the backends see them in shared memory.
 *
 * The launcher gives each served database an entry and starts its worker;
 * the worker attaches to the entry and publishes there what moneroo_status
 * shows of it; a backend finds its database's worker through it (to wake
 * it, to hand it a moneroo_transfer).  What the workers share as one
 * Moneroo account (the rate limiter, the pause, max_concurrency) is summed
 * or kept cluster-wide, never per entry.
 */
#ifndef MONEROO_SERVED_DATABASES_H
#define MONEROO_SERVED_DATABASES_H

#include "datatype/timestamp.h"
#include "storage/latch.h"

#include "common/message_text.h"

/* Databases one cluster serves at most (each has a worker process). */
#define SERVED_DATABASES_MAX 64

typedef struct ServedDatabase
{
	Oid			database;		/* InvalidOid: a free entry */
	char		name[NAMEDATALEN];
	pid_t		worker_pid;		/* 0 when its worker does not run */
	Latch	   *worker_latch;
	bool		worker_ready;	/* has settled what a previous worker left */
	bool		extension_absent;	/* '*': its worker found no extension and stopped */
	bool		being_dropped;	/* DROP DATABASE waits for its worker to stop */
	bool		extension_changed;	/* a CREATE or DROP EXTENSION committed here */
	int32		requests;		/* in flight: its part of max_concurrency */
	bool		waiting_for_place;	/* found max_concurrency full: wake it when one frees */
	int32		in_flight;		/* shown: requests and claims about to leave */
	char		last_error[LAST_ERROR_BYTES];
	TimestampTz last_error_at;
} ServedDatabase;

/* What moneroo_worker_info shows of this database's worker. */
typedef struct ServedWorkerInfo
{
	pid_t		worker_pid;
	int32		in_flight;
	char		last_error[LAST_ERROR_BYTES];
	TimestampTz last_error_at;
} ServedWorkerInfo;

/* ---- any process ---- */

/* Sets the latch of this database's worker, if one runs. */
extern void moneroo_wake_worker(void);

/* Keeps error as this database's last_error (moneroo_status). */
extern void moneroo_note_error(const char *error);

/* Whether a worker runs for this database. */
extern bool served_worker_running(void);

extern void served_worker_info(ServedWorkerInfo *info);

/* Sets the launcher's latch. */
extern void served_wake_launcher(void);

/*
 * A CREATE or DROP EXTENSION of moneroo committed in this database: the
 * launcher starts its worker (with '*'), the worker looks again.
 */
extern void served_note_extension_change(void);

/*
 * DROP DATABASE: stops the worker of database (it holds a connection that
 * would make the drop fail) and keeps the launcher from starting it again
 * until served_drop_finished.  Waits up to wait_ms for it to stop.
 */
extern void served_stop_for_drop(Oid database, long wait_ms);
extern void served_drop_finished(Oid database);

/* ---- the worker ---- */

/* Attaches this process to entry, as its worker; returns its database. */
extern Oid	served_worker_attach(int entry);

/* The name the launcher gave this worker's database. */
extern const char *served_worker_database_name(void);

extern void served_worker_ready(void);

/* With '*': no extension here, so no worker until a CREATE EXTENSION. */
extern void served_worker_found_no_extension(void);

/* True once after a CREATE or DROP EXTENSION committed in this database. */
extern bool served_worker_take_extension_change(void);

/*
 * A place for one request under limit (max_concurrency, or less while the
 * account ramps up), counted for every worker at once.
 */
extern bool served_take_request_place(int limit);

/*
 * This worker found no place under max_concurrency: the next worker whose
 * request finishes sets its latch (its own finishing requests wake it
 * anyway; another's would not).
 */
extern void served_wait_for_place(void);

/* This worker's entry (0 to SERVED_DATABASES_MAX - 1); -1 in a backend. */
extern int	served_my_index(void);

/* requests: this worker's calls in flight; shown adds the claims about to leave. */
extern void served_publish_in_flight(int requests, int shown);

/* Requests in flight of every worker. */
extern int	served_requests_in_flight(void);

/* ---- the launcher ---- */

/* The entry of database, taken if new; -1 when every entry is taken. */
extern int	served_entry_for(Oid database, const char *name);

/* A copy of entry, read under the lock. */
extern void served_entry_copy(int entry, ServedDatabase *copy);

extern void served_entry_forget(int entry);

/* The launcher's worker stopped for good or is started again: forget what it reported. */
extern void served_entry_starting(int entry);

extern void served_launcher_attach(void);

/* Registers the served databases' shared memory; from _PG_init. */
extern void served_databases_shmem(void);

#endif
