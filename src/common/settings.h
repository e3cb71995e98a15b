/*
 * settings.h
 *		The moneroo.* configuration parameters.
 */
#ifndef MONEROO_SETTINGS_H
#define MONEROO_SETTINGS_H

#include "nodes/pg_list.h"

extern char *moneroo_api_url;
extern char *moneroo_secret_key;
extern char *moneroo_secret_key_file;
extern char *moneroo_webhook_secret;
extern char *moneroo_database;
extern char *moneroo_ca_bundle;
extern int	moneroo_max_concurrency;
extern int	moneroo_rate_limit;
extern int	moneroo_request_timeout_ms;
extern int	moneroo_verify_min_interval_ms;
extern int	moneroo_verify_max_interval_ms;
extern int	moneroo_poll_interval_ms;
/* moneroo.subscription_timeout: the statement_timeout of a subscription's handler. */
extern int	moneroo_subscription_timeout_ms;
extern int	moneroo_breaker_threshold;
extern int	moneroo_claim_standbys;
extern int	moneroo_claim_standbys_timeout_ms;
/* moneroo.restoring: rows enter payouts and payout_events as they were dumped. */
extern bool moneroo_restoring;
/* The hint of every refusal of a row that looks restored from a dump. */
#define MONEROO_RESTORING_HINT \
	"To restore a dump, set moneroo.restoring to on for the restoring session, for example PGOPTIONS='-c moneroo.restoring=on'."

extern void moneroo_define_settings(void);

/* moneroo.database is '*': every database with the extension is served. */
extern bool moneroo_serves_every_database(void);

/* Whether moneroo.database names this database (or is '*'). */
extern bool moneroo_database_listed(const char *name);

/* The names moneroo.database lists (a List of char *); NIL for '*'. */
extern List *moneroo_listed_databases(void);

/*
 * The key to send, from moneroo.secret_key or moneroo.secret_key_file.
 * Raises a configuration error when neither gives one.
 */
extern const char *moneroo_get_secret_key(void);

/* Whether moneroo.secret_key_file changed since the key was last read from it. */
extern bool moneroo_secret_key_file_changed(void);

/*
 * Raises a configuration error unless a usable key is configured.  (The
 * API URL needs no check here: its check hook refuses a bad one whenever
 * it is set.)
 */
extern void moneroo_check_configuration(void);

#endif
