/*
 * moneroo_api.h
 *		What Moneroo's payout API expects and answers, and what each answer
 *		means for a payout.
 */
#ifndef MONEROO_API_H
#define MONEROO_API_H

#include "utils/jsonb.h"

#include "common/payout_status.h"
#include "moneroo/http_client.h"

/* What an initialize exchange did to the payout. */
typedef enum SendVerdict
{
	SEND_ACCEPTED,				/* Moneroo created it: we have its id */
	SEND_REFUSED,				/* Moneroo refused it: no payout exists */
	SEND_NOT_SENT,				/* provably never reached Moneroo, or 429 */
	SEND_UNKNOWN				/* it may or may not exist */
} SendVerdict;

typedef struct MonerooAnswer
{
	Jsonb	   *body;			/* the answer when it was JSON, else NULL */
	char	   *moneroo_id;		/* data.id, when well formed */
	MonerooStatus moneroo_status;	/* data.status, once a verify was read */
	char	   *error;			/* what went wrong, for last_error and users */
	char	   *detail;			/* Moneroo's message and field errors */
	bool		rate_limited;	/* HTTP 429 */
	bool		key_refused;	/* HTTP 401 or 403: the key, not the payout */
	bool		uncounted;		/* not an attempt at the payout: attempts stays */
	char	   *payout_reference;	/* a verify's data.metadata.payout_reference */
} MonerooAnswer;

/* The initialize body: the request plus metadata.payout_reference. */
extern char *moneroo_initialize_body(Jsonb *request, const char *reference);

/* Moneroo's routes (the verify route below, for an id). */
#define MONEROO_INITIALIZE_PATH "/v1/payouts/initialize"
/* the catalogue of payout methods: no /v1, no key needed, creates nothing */
#define MONEROO_METHODS_PATH "/utils/payout/methods"

/* Path of the verify route for a Moneroo id (escaped). */
extern char *moneroo_verify_path(const char *moneroo_id);

extern SendVerdict moneroo_read_initialize(HttpCall *call, MonerooAnswer *answer);

/*
 * Reads a verify answer; returns true when it carries a documented status
 * for the payout asked about (answer->moneroo_status).
 */
extern bool moneroo_read_verify(HttpCall *call, const char *moneroo_id,
								MonerooAnswer *answer);

/* A Moneroo id we accept: 1 to 64 letters, digits, '-', '_' or '.'. */
extern bool moneroo_id_is_well_formed(JsonbValue *id);
extern bool moneroo_id_text_is_well_formed(const char *id);

extern const char *send_verdict_name(SendVerdict verdict);

/* 401 and 403 mean the key, not the payout. */
extern bool http_status_refuses_key(long http_status);

#endif
