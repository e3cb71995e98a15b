/*
 * standby_wait.h
 *		moneroo.claim_standbys: a claim's request leaves only once enough
 *		streaming standbys have flushed the claim.
 */
#ifndef MONEROO_STANDBY_WAIT_H
#define MONEROO_STANDBY_WAIT_H

#include "access/xlogdefs.h"

/*
 * How many physical standbys streaming from this server have flushed WAL
 * up to lsn; *connected (if not NULL) is how many stream at all.
 */
extern int	standbys_flushed(XLogRecPtr lsn, int *connected);

/*
 * Whether fewer standbys stream than moneroo.claim_standbys asks for: then
 * no claim could ever be sent.  *streaming is how many do.
 */
extern bool standbys_too_few(int *streaming);

#endif
