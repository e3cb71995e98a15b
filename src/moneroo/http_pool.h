/*
 * http_pool.h
 *		Many calls to Moneroo at once, for the worker.
 */
#ifndef MONEROO_HTTP_POOL_H
#define MONEROO_HTTP_POOL_H

#include "moneroo/http_client.h"

/*
 * Many calls at once for the worker: one libcurl multi handle whose sockets
 * sit in an epoll set that the worker waits on together with its latch.
 */
typedef struct HttpPool HttpPool;

extern HttpPool *http_pool_create(void);
/* Adds a call; it starts at the next http_pool_wait. */
extern void http_pool_add(HttpPool *pool, HttpCall *call);
extern int	http_pool_in_flight(HttpPool *pool);
/* True when finished calls wait to be taken with http_pool_next_done. */
extern bool http_pool_has_finished(HttpPool *pool);

/*
 * Sleeps until the latch is set, a socket is ready, libcurl's timer fires or
 * timeout_ms passes (-1: no limit of our own), then lets libcurl progress.
 * With timeout_ms 0 it only lets libcurl progress: new calls start
 * connecting.
 * Returns the WaitEvent flags that woke it (WL_LATCH_SET, ...).
 */
extern int	http_pool_wait(HttpPool *pool, long timeout_ms, uint32 wait_event_info);

/* Finished calls, one at a time, already classified; NULL when none. */
extern HttpCall *http_pool_next_done(HttpPool *pool);

#endif
