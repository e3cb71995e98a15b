/*
 * recent_asks.h
 *		The Moneroo ids a webhook had Moneroo asked about in the last few
 *		seconds, shared by every backend: a replayed delivery costs no
 *		request.
 */
#ifndef MONEROO_RECENT_ASKS_H
#define MONEROO_RECENT_ASKS_H

#include "datatype/timestamp.h"

/* A delivery for an id asked about this recently asks nothing. */
#define RECENT_ASK_MS (10 * 1000)

/*
 * True, with the ask noted as now, when nobody asked Moneroo about
 * moneroo_id in the last RECENT_ASK_MS; false, with *asked_at set to
 * when somebody did, otherwise.
 */
extern bool recent_ask_claim(const char *moneroo_id, TimestampTz *asked_at);

/* The claimed ask did not leave after all (no room under the rate limit). */
extern void recent_ask_forget(const char *moneroo_id);

extern void recent_asks_shmem(void);

#endif
