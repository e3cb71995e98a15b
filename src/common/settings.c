/*
 * settings.c
 *		The moneroo.* configuration parameters and the secret key.
 *
 * The secret key is what stands between a database role and the company's
 * money, so it is superuser-only, hidden from SHOW ALL, and restart-only:
 * PostgreSQL logs "parameter ... changed to <value>" whenever a reloadable
 * setting changes, which would write the key into the server log.  Keys are
 * rotated without a restart through moneroo.secret_key_file, whose contents
 * never pass through the GUC machinery.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#include "common/settings.h"
#include "compat/compat.h"

char	   *moneroo_api_url = NULL;
char	   *moneroo_secret_key = NULL;
char	   *moneroo_secret_key_file = NULL;
char	   *moneroo_webhook_secret = NULL;
char	   *moneroo_database = NULL;
char	   *moneroo_ca_bundle = NULL;
int			moneroo_max_concurrency = 8;
int			moneroo_rate_limit = 120;
int			moneroo_request_timeout_ms = 30000;
int			moneroo_verify_min_interval_ms = 2000;
int			moneroo_verify_max_interval_ms = 600000;
int			moneroo_poll_interval_ms = 60000;
int			moneroo_subscription_timeout_ms = 5000;
int			moneroo_breaker_threshold = 3;
int			moneroo_claim_standbys = 0;
int			moneroo_claim_standbys_timeout_ms = 5000;
bool		moneroo_restoring = false;

/* Longest key file we accept: real keys are well under 200 bytes. */
#define MAX_KEY_FILE_BYTES 4096

/* What we last read from the key file, to re-read only when it changes. */
static char key_file_contents[MAX_KEY_FILE_BYTES + 1];
static char key_file_path[MAXPGPATH];
static struct stat key_file_stat;

/* localhost, 127.0.0.0/8 or ::1, as literal addresses: never a name like 127.0.0.1.example.com */
static bool
host_is_loopback(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;
	char		unbracketed[INET6_ADDRSTRLEN + 2];
	size_t		len = strlen(host);

	if (pg_strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (len > 2 && len < sizeof(unbracketed) && host[0] == '[' && host[len - 1] == ']')
	{
		memcpy(unbracketed, host + 1, len - 2);
		unbracketed[len - 2] = '\0';
		return inet_pton(AF_INET6, unbracketed, &v6) == 1 &&
			memcmp(&v6, &in6addr_loopback, sizeof(v6)) == 0;
	}
	return false;
}

/*
 * Only HTTPS leaves the machine: the key travels in every request, so plain
 * http is allowed to loopback only (tests and a local sandbox).
 */
static bool
check_api_url(char **newval, void **extra, GucSource source)
{
	CURLU	   *url;
	char	   *scheme = NULL;
	char	   *host = NULL;
	bool		ok = true;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		GUC_check_errdetail("The Moneroo API URL must not be empty.");
		return false;
	}

	url = curl_url();
	if (url == NULL)
		return false;
	if (curl_url_set(url, CURLUPART_URL, *newval, 0) != CURLUE_OK ||
		curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(url, CURLUPART_HOST, &host, 0) != CURLUE_OK)
	{
		GUC_check_errdetail("\"%s\" is not a valid URL.", *newval);
		ok = false;
	}
	else if (strcmp(scheme, "https") != 0 &&
			 !(strcmp(scheme, "http") == 0 && host_is_loopback(host)))
	{
		GUC_check_errdetail("The Moneroo API must be reached over https; plain http is allowed only to a loopback address.");
		ok = false;
	}
	else if (strchr(*newval, '?') != NULL || strchr(*newval, '#') != NULL)
	{
		GUC_check_errdetail("The Moneroo API URL must not carry a query or a fragment.");
		ok = false;
	}

	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(url);
	return ok;
}

/*
 * Superuser-only settings are still readable by pg_read_all_settings
 * members, monitoring roles among them: secrets show as a mask instead.
 */
static const char *
show_secret(const char *value)
{
	if (value == NULL || value[0] == '\0')
		return "";
	return superuser() ? value : "********";
}

static const char *
show_secret_key(void)
{
	return show_secret(moneroo_secret_key);
}

static const char *
show_webhook_secret(void)
{
	return show_secret(moneroo_webhook_secret);
}

/*
 * moneroo.database: '*', or database names separated by commas.  Names keep
 * their case (a database is named exactly); double quotes keep a comma or
 * a space in one.
 */
static bool
parse_database_list(const char *value, List **names)
{
	char	   *copy = pstrdup(value);

	*names = NIL;
	return SplitGUCList(copy, ',', names);
}

static bool
check_database(char **newval, void **extra, GucSource source)
{
	List	   *names;

	if (*newval == NULL || strcmp(*newval, "*") == 0)
		return true;
	if (!parse_database_list(*newval, &names) || names == NIL)
	{
		GUC_check_errdetail("moneroo.database must be '*' or a list of database names separated by commas.");
		return false;
	}
	for (ListCell *lc = list_head(names); lc; lc = lnext(names, lc))
	{
		if (((char *) lfirst(lc))[0] == '\0' || strcmp(lfirst(lc), "*") == 0)
		{
			GUC_check_errdetail("moneroo.database must be '*' or a list of database names separated by commas.");
			return false;
		}
	}
	return true;
}

bool
moneroo_serves_every_database(void)
{
	return moneroo_database != NULL && strcmp(moneroo_database, "*") == 0;
}

bool
moneroo_database_listed(const char *name)
{
	List	   *names;
	ListCell   *lc;

	if (moneroo_serves_every_database())
		return true;
	if (moneroo_database == NULL || !parse_database_list(moneroo_database, &names))
		return false;
	foreach(lc, names)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
}

List *
moneroo_listed_databases(void)
{
	List	   *names;

	if (moneroo_serves_every_database() || moneroo_database == NULL ||
		!parse_database_list(moneroo_database, &names))
		return NIL;
	return names;
}

void
moneroo_define_settings(void)
{
	DefineCustomStringVariable("moneroo.api_url",
							   "Base URL of the Moneroo API.",
							   "Plain http is accepted only for loopback addresses.",
							   &moneroo_api_url,
							   "https://api.moneroo.io",
							   PGC_SIGHUP, 0,
							   check_api_url, NULL, NULL);

	DefineCustomStringVariable("moneroo.secret_key",
							   "Moneroo secret key used to authenticate payouts.",
							   "Restart-only so that it never appears in the server log; rotate keys with moneroo.secret_key_file.",
							   &moneroo_secret_key,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, show_secret_key);

	DefineCustomStringVariable("moneroo.secret_key_file",
							   "File holding the Moneroo secret key, readable by the server's OS user only.",
							   "Takes precedence over moneroo.secret_key; re-read when the file changes.",
							   &moneroo_secret_key_file,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("moneroo.webhook_secret",
							   "Secret that signs Moneroo webhooks (X-Moneroo-Signature).",
							   NULL,
							   &moneroo_webhook_secret,
							   "",
							   PGC_POSTMASTER,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, show_webhook_secret);

	DefineCustomStringVariable("moneroo.ca_bundle",
							   "File of CA certificates that may sign the Moneroo API's certificate.",
							   "Empty uses the system's CA store. Certificate and host name checks are always on.",
							   &moneroo_ca_bundle,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("moneroo.database",
							   "Databases whose payouts the background workers serve: a list of names, or * for every database with the extension.",
							   "Each served database has a worker of its own; they share one rate limit and one concurrency limit.",
							   &moneroo_database,
							   "postgres",
							   PGC_SIGHUP, GUC_LIST_INPUT,
							   check_database, NULL, NULL);

	DefineCustomIntVariable("moneroo.max_concurrency",
							"Requests to Moneroo in flight at once.",
							NULL,
							&moneroo_max_concurrency,
							8, 1, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.rate_limit",
							"Requests per minute the worker sends to Moneroo; 0 means unlimited.",
							"Moneroo documents a limit of 120 requests per minute.",
							&moneroo_rate_limit,
							120, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.request_timeout",
							"Longest a request to Moneroo may take, connection included.",
							NULL,
							&moneroo_request_timeout_ms,
							30000, 100, 600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.verify_min_interval",
							"Delay before the first verification of a sent payout; it doubles after each one.",
							"While signed webhooks arrive, polls wait moneroo.verify_max_interval instead: each webhook has its payout verified.",
							&moneroo_verify_min_interval_ms,
							2000, 100, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.verify_max_interval",
							"Longest delay between two verifications of a sent payout.",
							"Also the safety-net poll of a payout while webhooks arrive.",
							&moneroo_verify_max_interval_ms,
							600000, 100, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.poll_interval",
							"Fallback interval at which the idle worker looks for work nobody woke it for.",
							"Commits wake the worker at once; this only catches what they could not.",
							&moneroo_poll_interval_ms,
							60000, 100, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.subscription_timeout",
							"Longest run of one call of a subscription's handler (its statement_timeout).",
							"The worker calls handlers between its rounds: a handler that runs longer is cancelled and retried later.",
							&moneroo_subscription_timeout_ms,
							5000, 10, 600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.breaker_threshold",
							"Initializes in a row left unknown by a failing Moneroo that stop the worker sending (the circuit breaker); 0 means never.",
							"At most moneroo.max_concurrency + this - 1 payouts become unknown in one outage.",
							&moneroo_breaker_threshold,
							3, 0, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.claim_standbys",
							"Streaming standbys that must have flushed a claim before its request to Moneroo leaves.",
							"With 1 or more, a failover to a standby that lacks a claim can never send that payout again.",
							&moneroo_claim_standbys,
							0, 0, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("moneroo.claim_standbys_timeout",
							"Longest a claim waits for moneroo.claim_standbys standbys; then it goes back to pending, unsent.",
							NULL,
							&moneroo_claim_standbys_timeout_ms,
							5000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * The one way in for rows as they were: a restore is said, never
	 * guessed, and only a superuser (or a role granted SET on it) says it.
	 */
	DefineCustomBoolVariable("moneroo.restoring",
							 "Lets a restore bring payouts and their history back as they were, without validation or limits.",
							 "Set it for the restoring session only, for example PGOPTIONS='-c moneroo.restoring=on' pg_restore ...",
							 &moneroo_restoring,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("moneroo");
}

pg_noreturn static void
config_error(const char *message, const char *hint)
{
	ereport(ERROR,
			errcode(ERRCODE_CONFIG_FILE_ERROR),
			errmsg("%s", message),
			errhint("%s", hint));
}

/* Whether path, as stat found it, is the key file we last read. */
static bool
same_as_last_read(const char *path, const struct stat *st)
{
	/* nanoseconds and ctime too: a rewrite within the same second counts */
	return strcmp(path, key_file_path) == 0 &&
		st->st_ino == key_file_stat.st_ino &&
		st->st_size == key_file_stat.st_size &&
		st->st_mtim.tv_sec == key_file_stat.st_mtim.tv_sec &&
		st->st_mtim.tv_nsec == key_file_stat.st_mtim.tv_nsec &&
		st->st_ctim.tv_sec == key_file_stat.st_ctim.tv_sec &&
		st->st_ctim.tv_nsec == key_file_stat.st_ctim.tv_nsec;
}

bool
moneroo_secret_key_file_changed(void)
{
	struct stat st;

	if (moneroo_secret_key_file == NULL || moneroo_secret_key_file[0] == '\0' ||
		stat(moneroo_secret_key_file, &st) != 0)
		return false;
	return !same_as_last_read(moneroo_secret_key_file, &st);
}

/*
 * Where the server keeps its key is for superusers and the server log: a
 * role that may only call moneroo_transfer is told that the key file
 * failed, not where it is.  (The worker's errors reach moneroo_status's
 * readers as last_error, which carries the message alone.)
 */
static int
errdetail_key_file(const char *path)
{
	if (AmBackgroundWorkerProcess() || !superuser())
		return errdetail_log("The file is \"%s\".", path);
	return errdetail("The file is \"%s\".", path);
}

/*
 * Reads the key file when it changed since the last read.  A file that
 * others may read is refused: the key moves money.
 */
static const char *
read_secret_key_file(const char *path)
{
	struct stat st;
	int			fd;
	ssize_t		len;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				errcode(ERRCODE_CONFIG_FILE_ERROR),
				errmsg("could not read moneroo.secret_key_file: %m"),
				errdetail_key_file(path),
				errhint("Point moneroo.secret_key_file at a file that holds the secret key and reload."));

	if (st.st_mode & (S_IRWXG | S_IRWXO))
		ereport(ERROR,
				errcode(ERRCODE_CONFIG_FILE_ERROR),
				errmsg("moneroo.secret_key_file is accessible to other users: it has mode %04o",
					   (unsigned int) (st.st_mode & 07777)),
				errdetail_key_file(path),
				errhint("Run chmod 600 on the file, owned by the database server's OS user."));

	if (same_as_last_read(path, &st))
		return key_file_contents;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				errcode(ERRCODE_CONFIG_FILE_ERROR),
				errmsg("could not open moneroo.secret_key_file: %m"),
				errdetail_key_file(path));
	len = read(fd, key_file_contents, MAX_KEY_FILE_BYTES);
	CloseTransientFile(fd);
	if (len < 0)
		ereport(ERROR,
				errcode(ERRCODE_CONFIG_FILE_ERROR),
				errmsg("could not read moneroo.secret_key_file: %m"),
				errdetail_key_file(path));

	/* An editor's trailing newline is not part of the key. */
	while (len > 0 && (key_file_contents[len - 1] == '\n' ||
					   key_file_contents[len - 1] == '\r' ||
					   key_file_contents[len - 1] == ' '))
		len--;
	key_file_contents[len] = '\0';
	strlcpy(key_file_path, path, sizeof(key_file_path));
	key_file_stat = st;
	return key_file_contents;
}

static bool
key_is_well_formed(const char *key)
{
	/* It goes into an HTTP header: no control characters, no spaces. */
	for (const char *p = key; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

const char *
moneroo_get_secret_key(void)
{
	const char *key;

	if (moneroo_secret_key_file != NULL && moneroo_secret_key_file[0] != '\0')
		key = read_secret_key_file(moneroo_secret_key_file);
	else
		key = moneroo_secret_key;

	if (key == NULL || key[0] == '\0')
		config_error("no Moneroo secret key is configured",
					 "Set moneroo.secret_key in postgresql.conf and restart, or set moneroo.secret_key_file and reload.");
	if (!key_is_well_formed(key))
		config_error("the configured Moneroo secret key contains spaces or control characters",
					 "Check moneroo.secret_key or the contents of moneroo.secret_key_file.");
	return key;
}

void
moneroo_check_configuration(void)
{
	(void) moneroo_get_secret_key();
}
