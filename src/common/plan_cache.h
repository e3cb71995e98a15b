/*
 * plan_cache.h
 *		Kept plans of the extension's own statements.
 */
#ifndef MONEROO_PLAN_CACHE_H
#define MONEROO_PLAN_CACHE_H

#include "executor/spi.h"

/* The plan of sql, prepared once per backend and kept; needs SPI. */
extern SPIPlanPtr plan_cache_get(const char *sql, int nargs, Oid *types);

#endif
