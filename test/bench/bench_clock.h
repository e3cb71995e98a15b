/*
 * bench_clock.h: the one clock of the benchmark programs.  bench_mock
 * journals arrivals with it and bench_driver and plain_client stamp their
 * requests with it, so that their times can be subtracted from each other.
 */
#ifndef BENCH_CLOCK_H
#define BENCH_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_REALTIME in microseconds */
static inline int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
