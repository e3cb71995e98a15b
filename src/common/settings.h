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
extern int	moneroo_breaker_threshold;
extern int	moneroo_claim_standbys;
extern int	moneroo_claim_standbys_timeout_ms;

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

/* Whether this statement is pg_restore's COPY, which brings rows back as they were. */
extern bool moneroo_restoring_from_dump(void);

#endif
