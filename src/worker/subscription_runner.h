/*
 * subscription_runner.h
 *		The worker calling the application's handlers, once per event.
 */
#ifndef MONEROO_SUBSCRIPTION_RUNNER_H
#define MONEROO_SUBSCRIPTION_RUNNER_H

/*
 * Delivers the events that are due to the subscriptions, for a bounded
 * time.  Returns how soon it wants to run again (0: more are due now), or -1
 * when nothing is waiting but new events.
 */
extern long subscriptions_deliver(void);

#endif
