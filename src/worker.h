/*
 * worker.h
 *		The background worker that sends queued payouts and follows them.
 */
#ifndef MONEROO_WORKER_H
#define MONEROO_WORKER_H

#include "fmgr.h"

extern void moneroo_register_worker(void);

extern PGDLLEXPORT void moneroo_worker_main(Datum arg);

#endif
