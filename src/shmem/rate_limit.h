/*
 * rate_limit.h
 *		The one allowance of requests to Moneroo, shared by the worker and
 *		every backend.
 */
#ifndef MONEROO_RATE_LIMIT_H
#define MONEROO_RATE_LIMIT_H

#include "datatype/timestamp.h"

/* After a 429 Moneroo asks for 60 seconds of silence. */
#define RATE_LIMIT_PAUSE_MS (60 * 1000)

/* Its state, in shared memory under the module's own mutex. */
typedef struct RateLimiter
{
	TimestampTz next_request_at;	/* the earliest moment the next may leave */
	TimestampTz paused_until;	/* after a 429, nobody sends until then */
	int64		rate_limited;	/* 429 answers since the server started */

	/* requests sent per second over the last minute, for moneroo_status */
	int64		second_of_bucket[60];
	int32		requests_in_bucket[60];
} RateLimiter;

/* Milliseconds until a request may leave, without taking the place. */
extern long moneroo_rate_wait_ms(void);

/*
 * Takes a place for one request under moneroo.rate_limit and any 429
 * pause.  Returns 0 when the request may leave now (and counts it), or the
 * milliseconds to wait before asking again.
 */
extern long moneroo_rate_acquire(void);

/* No request leaves for the next pause_ms (no connection could be made). */
extern void moneroo_rate_pause(long pause_ms);

/* After a 429: counted, and no request leaves for RATE_LIMIT_PAUSE_MS. */
extern void moneroo_rate_limited(void);

/* The 429 answers since the server started, and the end of their pause (0: none). */
extern int64 moneroo_rate_limited_count(TimestampTz *paused_until);

extern int	moneroo_requests_last_minute(void);

/* Registers the limiter's shared memory; from _PG_init. */
extern void moneroo_rate_limit_shmem(void);

#endif
