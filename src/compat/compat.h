/*
 * compat.h
 *		Every difference between the PostgreSQL majors moneroo builds on:
 *		15, 16, 17 and 18.
 *
 * This is the only file in src/ that tests PG_VERSION_NUM.  The code is
 * written against PostgreSQL 18.  Where an older major spells the same
 * thing differently, this header gives it 18's spelling (pg_noreturn,
 * PG_MODULE_MAGIC_EXT, object_ownercheck, object_aclcheck, WaitEventExtensionNew), so that
 * dropping a major later means deleting its block here and nothing else.
 * Where 18's call takes something older majors have no counterpart for (a
 * ResourceOwner, a caller-allocated lexer), a compat_ macro names what the
 * caller means and expands to the right call on each major.
 *
 * Everything here is a macro, expanded where it is used: the file including
 * this header includes the PostgreSQL headers the expansion needs, as it
 * would for the call written out.
 *
 * 15, 17 and 18 are built and tested (test/run.sh --pg N); 16 is built from
 * the same definitions (its differences from 15 and 17 are each named below)
 * but nothing here runs its tests.
 *
 * PostgreSQL 19 will need, as far as its development branch shows:
 *	- SIGNAL_ARGS gains a second parameter (the sender's pg_signal_info), so
 *	  pqsigfunc is no longer void (*)(int): worker_transaction.c's handlers,
 *	  declared with SIGNAL_ARGS, follow by themselves; anything that passes
 *	  SIG_IGN/SIG_DFL or forwards postgres_signal_arg to another handler
 *	  must use PG_SIG_IGN/PG_SIG_DFL and pass the info along.
 *	- pushJsonbValue() takes a JsonbInState * instead of JsonbParseState **
 *	  and returns nothing (the value is left in the state's result):
 *	  moneroo_api.c builds its requests with it, so it needs a
 *	  compat_push_jsonb_value() here or the new interface backfilled.
 *	- LWLockNewTrancheId() takes the tranche's name and LWLockRegisterTranche()
 *	  is gone.  moneroo has no LWLock of its own today (a spinlock guards its
 *	  shared state); one added later should get its tranche through a macro
 *	  here.
 *	- ShmemInitHash() loses its init_size argument (moneroo uses none today).
 */
#ifndef MONEROO_COMPAT_H
#define MONEROO_COMPAT_H

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 190000
#error "moneroo builds on PostgreSQL 15, 16, 17 and 18 only: point PG_CONFIG at the pg_config of one of them"
#endif

/*
 * PG_MODULE_MAGIC_EXT (18): the magic block also carries the module's name
 * and version, which pg_get_loaded_modules() shows.  Older majors have only
 * the plain block; the name and version are dropped there.
 */
#if PG_VERSION_NUM < 180000
#define PG_MODULE_MAGIC_EXT(...) PG_MODULE_MAGIC
#endif

/*
 * pg_noreturn (18) replaced pg_attribute_noreturn() (15-17).  Written where
 * 18 writes it, first in the declaration: "pg_noreturn static void f(...)".
 */
#if PG_VERSION_NUM < 180000
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * object_ownercheck (16) replaced the per-catalog pg_*_ownercheck functions
 * (15).  moneroo checks ownership of databases and of its extension only;
 * the assertion keeps a check of anything else from silently becoming one
 * of those on 15.
 */
#if PG_VERSION_NUM < 160000
#include "catalog/pg_database.h"	/* the classids the assertion knows */
#include "catalog/pg_extension.h"
#define object_ownercheck(classid, objectid, roleid) \
	(StaticAssertExpr((classid) == DatabaseRelationId || (classid) == ExtensionRelationId, \
					  "moneroo's object_ownercheck for PostgreSQL 15 knows databases and extensions only"), \
	 (classid) == DatabaseRelationId ? pg_database_ownercheck((objectid), (roleid)) : \
	 pg_extension_ownercheck((objectid), (roleid)))
#endif

/*
 * object_aclcheck (16) replaced the per-catalog pg_*_aclcheck functions
 * (15).  moneroo checks EXECUTE on functions only (a subscription's
 * handler); the assertion keeps a check of anything else from silently
 * becoming a function check on 15.
 */
#if PG_VERSION_NUM < 160000
#define object_aclcheck(classid, objectid, roleid, mode) \
	(StaticAssertExpr((classid) == ProcedureRelationId, \
					  "moneroo's object_aclcheck for PostgreSQL 15 knows functions only"), \
	 pg_proc_aclcheck((objectid), (roleid), (mode)))
#endif

/*
 * AmBackgroundWorkerProcess() (17) replaced the global IsBackgroundWorker
 * (15, 16).
 */
#if PG_VERSION_NUM < 170000
#define AmBackgroundWorkerProcess() IsBackgroundWorker
#endif

/*
 * Named wait events (17): pg_stat_activity shows the name given here with
 * wait_event_type Extension.  Before 17 every extension wait shows as
 * "Extension".  (The name is evaluated but unused there.)
 */
#if PG_VERSION_NUM < 170000
#define WaitEventExtensionNew(wait_event_name) ((void) (wait_event_name), PG_WAIT_EXTENSION)
#endif

/*
 * compat_create_wait_event_set(nevents): a WaitEventSet that lives as long
 * as the process.  17 ties a set to a ResourceOwner (none: it is never
 * released by a transaction's end); 15 and 16 allocate it in a memory
 * context.
 */
#if PG_VERSION_NUM >= 170000
#define compat_create_wait_event_set(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define compat_create_wait_event_set(nevents) CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * compat_json_lex_cstring(json, len, encoding, need_escapes): a JSON lexer
 * over json[0..len), allocated in CurrentMemoryContext.  17 lets the caller
 * supply the lexer (NULL: allocate one).
 */
#if PG_VERSION_NUM >= 170000
#define compat_json_lex_cstring(json, len, encoding, need_escapes) \
	makeJsonLexContextCstringLen(NULL, (json), (len), (encoding), (need_escapes))
#else
#define compat_json_lex_cstring(json, len, encoding, need_escapes) \
	makeJsonLexContextCstringLen((json), (len), (encoding), (need_escapes))
#endif

/*
 * compat_my_lxid(): this backend's local transaction id.  17 moved it into
 * PGPROC's vxid.
 */
#if PG_VERSION_NUM >= 170000
#define compat_my_lxid() (MyProc->vxid.lxid)
#else
#define compat_my_lxid() (MyProc->lxid)
#endif

#endif							/* MONEROO_COMPAT_H */
