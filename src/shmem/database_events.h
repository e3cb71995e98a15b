/*
 * database_events.h
 *		What the launcher and the workers must hear of at once: CREATE and
 *		DROP EXTENSION moneroo, and DROP DATABASE of a served database.
 */
#ifndef MONEROO_DATABASE_EVENTS_H
#define MONEROO_DATABASE_EVENTS_H

extern void moneroo_register_database_events(void);

#endif
