/*
 * moneroo.c
 *		Entry point of the moneroo extension.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "fmgr.h"
#include "miscadmin.h"

#include "common/settings.h"
#include "compat/compat.h"
#include "shmem/account_health.h"
#include "shmem/commit_wakeup.h"
#include "shmem/database_events.h"
#include "shmem/rate_limit.h"
#include "shmem/recent_asks.h"
#include "shmem/served_databases.h"
#include "shmem/shared_state.h"
#include "shmem/transfer_slots.h"
#include "table/audit_trail.h"
#include "table/spending_limits.h"
#include "table/verify_schedule.h"
#include "worker/launcher.h"

PG_MODULE_MAGIC_EXT(.name = "moneroo", .version = MONEROO_VERSION);

void		_PG_init(void);

void
_PG_init(void)
{
	/*
	 * Without the workers, queued payouts would wait forever in silence:
	 * refuse to load rather than accept payouts nobody will send.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				errmsg("moneroo must be loaded through shared_preload_libraries"),
				errdetail("Its background worker sends queued payouts and can only be started at server start."),
				errhint("Add moneroo to shared_preload_libraries in postgresql.conf and restart the server."));

	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				errcode(ERRCODE_SYSTEM_ERROR),
				errmsg("could not initialize libcurl"));

	moneroo_define_settings();
	moneroo_register_commit_wakeup();
	moneroo_register_database_events();
	audit_register_callbacks();
	limits_register_callbacks();
	served_databases_shmem();
	moneroo_rate_limit_shmem();
	account_health_shmem();
	transfer_slots_shmem();
	verify_schedule_shmem();
	recent_asks_shmem();
	moneroo_shared_memory_hooks();
	moneroo_register_launcher();
}
