/*
 * bench_driver.c: the SQL side of the latency benchmarks (test/bench/run.sh).
 * Times are CLOCK_REALTIME microseconds, the clock bench_mock journals with.
 *
 *   bench_driver commits CONNINFO COUNT RATE WARMUP OUTFILE
 *       COUNT+WARMUP transactions, each BEGIN; INSERT one payout; COMMIT.
 *       RATE > 0: a steady stream, transaction k starts at t0 + k/RATE.
 *       RATE = 0: the worker idle: after each commit wait (polling every
 *       2 ms on a second connection) until the payout is sent, then 50 ms more,
 *       so that the next commit finds the worker asleep.
 *       Writes, for the COUNT measured ones (after WARMUP):
 *           reference commit_sent_us commit_returned_us
 *
 *   bench_driver transfer CONNINFO COUNT WARMUP OUTFILE
 *       COUNT+WARMUP calls of SELECT id FROM moneroo_transfer($1), one after
 *       the other, then as many SELECT 1 (the bare round trip); writes
 *           transfer|select1 start_us end_us reference|-
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

static const char *REQUEST =
"{\"amount\": 100, \"currency\": \"USD\", \"description\": \"benchmark payout\", "
"\"method\": \"moneroo_payout_demo\", \"customer\": {\"email\": \"bench@example.com\", "
"\"first_name\": \"Plain\", \"last_name\": \"Bench\"}, "
"\"recipient\": {\"account_number\": \"4149518161\"}}";

static void
sleep_until(int64_t t)
{
	int64_t		d = t - now_us();

	if (d > 0)
	{
		struct timespec ts = {d / 1000000, (d % 1000000) * 1000};

		nanosleep(&ts, NULL);
	}
}

static PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "bench_driver: %s", PQerrorMessage(conn));
		exit(1);
	}
	return conn;
}

static PGresult *
run(PGconn *conn, const char *sql, int nparams, const char *const *params, ExecStatusType want)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != want)
	{
		fprintf(stderr, "bench_driver: %s: %s", sql, PQerrorMessage(conn));
		exit(1);
	}
	return res;
}

static int
commits(const char *conninfo, int count, double rate, int warmup, const char *outfile)
{
	PGconn	   *conn = connect_or_die(conninfo);
	PGconn	   *watch = rate > 0 ? NULL : connect_or_die(conninfo);
	FILE	   *out = fopen(outfile, "w");
	int64_t		t0;
	const char *params[1] = {REQUEST};

	if (out == NULL)
	{
		perror(outfile);
		return 1;
	}
	PQclear(run(conn, "SET application_name = 'bench_driver'", 0, NULL, PGRES_COMMAND_OK));
	t0 = now_us() + 20000;
	for (int k = 0; k < count + warmup; k++)
	{
		PGresult   *res;
		char		reference[64];
		int64_t		sent, returned;

		if (rate > 0)
			sleep_until(t0 + (int64_t) (k * 1e6 / rate));
		PQclear(run(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK));
		res = run(conn, "INSERT INTO payouts (request) VALUES ($1::jsonb) RETURNING reference",
				  1, params, PGRES_TUPLES_OK);
		snprintf(reference, sizeof(reference), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		sent = now_us();
		PQclear(run(conn, "COMMIT", 0, NULL, PGRES_COMMAND_OK));
		returned = now_us();
		if (k >= warmup)
			fprintf(out, "%s %lld %lld\n", reference, (long long) sent, (long long) returned);
		if (rate == 0)
		{
			const char *ref[1] = {reference};
			int64_t		deadline = now_us() + 10 * 1000000;

			for (;;)
			{
				res = run(watch, "SELECT status FROM payouts WHERE reference = $1::uuid",
						  1, ref, PGRES_TUPLES_OK);
				if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "pending") != 0 &&
					strcmp(PQgetvalue(res, 0, 0), "sending") != 0)
				{
					PQclear(res);
					break;
				}
				PQclear(res);
				if (now_us() > deadline)
				{
					fprintf(stderr, "bench_driver: payout %s not sent within 10 s\n", reference);
					return 1;
				}
				usleep(2000);
			}
			usleep(50000);
		}
	}
	fclose(out);
	PQfinish(conn);
	if (watch)
		PQfinish(watch);
	return 0;
}

static int
transfer(const char *conninfo, int count, int warmup, const char *outfile)
{
	PGconn	   *conn = connect_or_die(conninfo);
	FILE	   *out = fopen(outfile, "w");
	const char *params[1] = {REQUEST};

	if (out == NULL)
	{
		perror(outfile);
		return 1;
	}
	for (int k = 0; k < count + warmup; k++)
	{
		int64_t		a = now_us(), b;
		PGresult   *res = run(conn, "SELECT reference FROM moneroo_transfer($1::jsonb)", 1, params,
							  PGRES_TUPLES_OK);

		b = now_us();
		if (k >= warmup)
			fprintf(out, "transfer %lld %lld %s\n", (long long) a, (long long) b, PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	for (int k = 0; k < count + warmup; k++)
	{
		int64_t		a = now_us(), b;

		PQclear(run(conn, "SELECT 1", 0, NULL, PGRES_TUPLES_OK));
		b = now_us();
		if (k >= warmup)
			fprintf(out, "select1 %lld %lld -\n", (long long) a, (long long) b);
	}
	fclose(out);
	PQfinish(conn);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 7 && strcmp(argv[1], "commits") == 0)
		return commits(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]), argv[6]);
	if (argc == 6 && strcmp(argv[1], "transfer") == 0)
		return transfer(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
	fprintf(stderr, "usage: %s commits CONNINFO COUNT RATE WARMUP OUTFILE\n"
			"       %s transfer CONNINFO COUNT WARMUP OUTFILE\n", argv[0], argv[0]);
	return 2;
}
