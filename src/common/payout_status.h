/*
 * payout_status.h
 *		The states of a payout, ours and Moneroo's: the one home of their
 *		names and of which of them are final.
 */
#ifndef MONEROO_PAYOUT_STATUS_H
#define MONEROO_PAYOUT_STATUS_H

/* This extension's state of a payout (payouts.status); see README.md. */
typedef enum PayoutStatus
{
	PAYOUT_PENDING,				/* queued, never sent */
	PAYOUT_SENDING,				/* claimed: its request may be on the wire */
	PAYOUT_SENT,				/* Moneroo has it; being verified */
	PAYOUT_SUCCESS,				/* Moneroo's final word */
	PAYOUT_FAILED,				/* Moneroo's final word */
	PAYOUT_REJECTED,			/* Moneroo refused it: no payout exists */
	PAYOUT_UNKNOWN,				/* it may or may not exist */
	PAYOUT_CANCELLED,			/* never to be sent (or Moneroo never created it) */
	PAYOUT_HELD					/* valid, waiting for a second person's approval */
} PayoutStatus;

extern const char *payout_status_name(PayoutStatus status);

/* The status of that name; an error for a name the table cannot hold. */
extern PayoutStatus payout_status_from_name(const char *name);

/* Final: nothing the extension does moves the payout again. */
extern bool payout_status_is_final(PayoutStatus status);

/*
 * Counted against a currency's daily_limit: the payout has moved money, or
 * will, or may have.
 */
extern bool payout_status_uses_daily_limit(PayoutStatus status);

/* Those statuses as a SQL list, "('pending', ...)", for a query. */
extern const char *payout_statuses_using_daily_limit_sql(void);

/* Moneroo's own status of a payout (payouts.moneroo_status). */
typedef enum MonerooStatus
{
	MONEROO_INITIATED,
	MONEROO_PENDING,
	MONEROO_SUCCESS,
	MONEROO_FAILED
} MonerooStatus;

extern const char *moneroo_status_name(MonerooStatus status);

/*
 * Reads a status Moneroo sent; false for one it does not document (the
 * answer is then not trusted).
 */
extern bool moneroo_status_parse(const char *name, MonerooStatus *status);

/* The state a sent payout takes when Moneroo reports this status. */
extern PayoutStatus payout_status_for(MonerooStatus status);

#endif
