/*
 * worker.h
 *		The background worker of one database: it sends its queued payouts
 *		and follows them.
 */
#ifndef MONEROO_WORKER_H
#define MONEROO_WORKER_H

#include "fmgr.h"
#include "postmaster/bgworker.h"

/* Starts the worker of the served database at entry (the launcher does). */
extern bool worker_launch(int entry, const char *database, BackgroundWorkerHandle **handle);

extern PGDLLEXPORT void moneroo_worker_main(Datum arg);

#endif
