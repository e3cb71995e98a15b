/*
 * launcher.h
 *		The launcher: one static background worker that starts a worker for
 *		every database moneroo.database serves, and restarts them.
 */
#ifndef MONEROO_LAUNCHER_H
#define MONEROO_LAUNCHER_H

#include "fmgr.h"

extern void moneroo_register_launcher(void);

extern PGDLLEXPORT void moneroo_launcher_main(Datum arg);

#endif
