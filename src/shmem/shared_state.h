/*
 * shared_state.h
 *		The extension's shared memory: one part per module, each with its own
 *		struct, its own lock and its own size (served_databases.c,
 *		rate_limit.c, account_health.c, transfer_slots.c, verify_schedule.c).
 *
 * A module registers its part from _PG_init; the part is created, zeroed
 * and its spinlock initialized once, at server start, and every process
 * finds it at the address the module gave.  Nothing here knows what a part
 * holds beyond its lock: no lock is shared between two modules.
 */
#ifndef MONEROO_SHARED_STATE_H
#define MONEROO_SHARED_STATE_H

/*
 * Asks for size bytes of shared memory named name, whose spinlock is
 * mutex_offset bytes in; *location points to it in every process once the
 * server has started (NULL before).  Only from _PG_init, while
 * shared_preload_libraries loads.
 */
extern void moneroo_shared_part(const char *name, Size size, Size mutex_offset,
								void **location);

/* The usual call: a part of type T at *location, its spinlock T.mutex. */
#define MONEROO_SHARED_PART(name, T, location) \
	moneroo_shared_part((name), sizeof(T), offsetof(T, mutex), (void **) (location))

/* Installs the hooks that create the registered parts; once, from _PG_init. */
extern void moneroo_shared_memory_hooks(void);

#endif
