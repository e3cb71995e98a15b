/*
 * account_health.h
 *		Whether the Moneroo account and Moneroo itself can take requests:
 *		a refused key pauses everything, a failing Moneroo opens a circuit
 *		breaker.  Neither is a verdict on any payout.
 */
#ifndef MONEROO_ACCOUNT_HEALTH_H
#define MONEROO_ACCOUNT_HEALTH_H

#include "datatype/timestamp.h"

#include "moneroo/http_client.h"
#include "moneroo/moneroo_api.h"

typedef enum AccountPause
{
	ACCOUNT_OK,					/* requests flow (maybe still ramping up) */
	ACCOUNT_KEY_REFUSED,		/* Moneroo answered 401 or 403 */
	ACCOUNT_MONEROO_FAILING		/* the circuit breaker is open */
} AccountPause;

/* Its state, in shared memory under the module's own mutex. */
typedef struct AccountHealth
{
	AccountPause pause;
	TimestampTz paused_until;	/* no request of the worker's before then */
	int			pauses;			/* pauses in a row, for the doubling */
	TimestampTz probe_at;		/* when the probe ending a pause left; 0: none out */
	int			server_failures;	/* initializes in a row left unknown by Moneroo */
	int			ramp;			/* after a pause: sends allowed in flight; 0: no cap */
} AccountHealth;

/* The pause now, for moneroo_status and moneroo_transfer; until may be NULL. */
extern AccountPause account_pause(TimestampTz *until);
extern const char *account_pause_reason(AccountPause pause);

/*
 * How many more requests the worker may have in flight beside in_flight,
 * as far as the account's health goes (max when healthy): none while
 * paused, and after a pause a number of sends that doubles with each good
 * answer.
 */
extern int	account_send_allowance(int in_flight, int max);
extern int	account_verify_allowance(int in_flight, int max);

/*
 * True once when a pause is over and no probe is out (or the last one was
 * lost): the caller sends a probe that creates nothing and reports its
 * answer with account_note_probe, or account_probe_not_sent if it could
 * not send it.
 */
extern bool account_take_probe(void);
extern void account_note_probe(HttpCall *call);
extern void account_probe_not_sent(void);

/*
 * What an answer of Moneroo says of the account: called for every
 * initialize (with its verdict) and every verification, by the worker
 * and by backends.
 */
extern void account_note_send(HttpCall *call, SendVerdict verdict);
extern void account_note_verify(HttpCall *call);

/* The key may work now (a reload, a new key file): try again at once. */
extern void account_key_may_work(void);

/* Registers the account's shared memory; from _PG_init. */
extern void account_health_shmem(void);

#endif
