/*
 * moneroo.c
 *		Entry point of the moneroo extension.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "fmgr.h"
#include "miscadmin.h"

#include "commit_wakeup.h"
#include "settings.h"
#include "shared_state.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				errcode(ERRCODE_SYSTEM_ERROR),
				errmsg("could not initialize libcurl"));

	moneroo_define_settings();
	moneroo_register_commit_wakeup();

	if (!process_shared_preload_libraries_in_progress)
		return;
	moneroo_request_shared_memory();
	moneroo_init_shared_memory();
}
