/*
 * plain_client.c: the baseline of the benchmarks -- a plain libcurl client
 * that POSTs N Moneroo initialize requests, C at a time, on one multi handle,
 * the way test/bench/run.sh compares the moneroo worker against.
 *
 *   plain_client -u BASE_URL [-n N] [-c C] [-k] [-K KEY] [-o FILE] [-q]
 *
 *   -u  base URL of the API (the path /v1/payouts/initialize is appended)
 *   -n  requests in all (default 1000)
 *   -c  requests in flight at once (default 8)
 *   -k  keep-alive: reuse connections (default: a fresh connection per
 *       request, CURLOPT_FRESH_CONNECT + CURLOPT_FORBID_REUSE, which is what
 *       the extension does for every POST -- src/http_client.c)
 *   -K  secret key for "Authorization: Bearer" (default: a test key)
 *   -o  write one line per request: start_us end_us http_status (CLOCK_REALTIME)
 *   -q  print only the summary line
 *
 * Every request is a new easy handle with the extension's headers and a body
 * of the extension's shape (the request + metadata.payout_reference).  The
 * summary line, key=value separated by spaces:
 *   requests= ok= failed= elapsed_s= rps= p50_ms= p99_ms= mean_ms= max_ms= mode= concurrency=
 *   cpu_us_per_request= (user + system CPU of this process, getrusage, per request)
 */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_clock.h"

typedef struct Req
{
	int64_t		start_us, end_us;
	long		status;
	char		body[1024];
	struct curl_slist *headers;
} Req;

static size_t
discard(char *data, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a, y = *(const int64_t *) b;

	return x < y ? -1 : x > y;
}

static void
random_uuid(char *out, unsigned *seed)
{
	static const char hex[] = "0123456789abcdef";
	int			k = 0;

	for (int i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
			out[k++] = '-';
		else if (i == 14)
			out[k++] = '4';
		else
			out[k++] = hex[rand_r(seed) & 15];
	}
	out[k] = '\0';
}

int
main(int argc, char **argv)
{
	const char *base = NULL;
	const char *key = "pvk_sandbox_t3stK3y|01JTESTKEYDONOTLOG0000000";
	const char *outfile = NULL;
	int			n = 1000, conc = 8, keepalive = 0, quiet = 0, opt;
	char		url[1024], auth[512];
	Req		   *reqs;
	CURLM	   *multi;
	int			next = 0, running = 0, done = 0, ok = 0;
	int64_t		t0, t1, *lat;
	unsigned	seed = (unsigned) time(NULL) ^ (unsigned) getpid();

	while ((opt = getopt(argc, argv, "u:n:c:kK:o:q")) != -1)
	{
		switch (opt)
		{
			case 'u': base = optarg; break;
			case 'n': n = atoi(optarg); break;
			case 'c': conc = atoi(optarg); break;
			case 'k': keepalive = 1; break;
			case 'K': key = optarg; break;
			case 'o': outfile = optarg; break;
			case 'q': quiet = 1; break;
			default:
				fprintf(stderr, "usage: %s -u BASE_URL [-n N] [-c C] [-k] [-K KEY] [-o FILE] [-q]\n", argv[0]);
				return 2;
		}
	}
	if (base == NULL || n <= 0 || conc <= 0)
	{
		fprintf(stderr, "plain_client: -u BASE_URL is required; -n and -c must be positive\n");
		return 2;
	}
	snprintf(url, sizeof(url), "%s/v1/payouts/initialize", base);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	reqs = calloc(n, sizeof(Req));
	lat = calloc(n, sizeof(int64_t));
	multi = curl_multi_init();
	/* keep-alive: keep one idle connection per slot for the next request */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) conc);

	t0 = now_us();
	while (done < n)
	{
		CURLMsg    *msg;
		int			left;

		while (running < conc && next < n)
		{
			Req		   *r = &reqs[next];
			CURL	   *easy = curl_easy_init();
			char		reference[40];

			random_uuid(reference, &seed);
			/* the extension's body: the request + metadata.payout_reference */
			snprintf(r->body, sizeof(r->body),
					 "{\"amount\": 100, \"method\": \"moneroo_payout_demo\", \"currency\": \"USD\", "
					 "\"customer\": {\"email\": \"bench@example.com\", \"last_name\": \"Bench\", "
					 "\"first_name\": \"Plain\"}, \"metadata\": {\"payout_reference\": \"%s\"}, "
					 "\"recipient\": {\"account_number\": \"4149518161\"}, "
					 "\"description\": \"benchmark payout %d\"}", reference, next);
			r->headers = curl_slist_append(NULL, auth);
			r->headers = curl_slist_append(r->headers, "Accept: application/json");
			r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
			r->headers = curl_slist_append(r->headers, "Expect:");
			curl_easy_setopt(easy, CURLOPT_URL, url);
			curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https,http");
			curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
			curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
			curl_easy_setopt(easy, CURLOPT_USERAGENT, "moneroo-bench-plain-client/1.0");
			curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
			curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
			curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body);
			curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(r->body));
			curl_easy_setopt(easy, CURLOPT_PRIVATE, r);
			if (!keepalive)
			{
				curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
				curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
			}
			r->start_us = now_us();
			curl_multi_add_handle(multi, easy);
			running++;
			next++;
		}
		curl_multi_perform(multi, &left);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Req		   *r;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r);
			r->end_us = now_us();
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
			if (r->status >= 200 && r->status < 300)
				ok++;
			else if (!quiet)
				fprintf(stderr, "request failed: %s, HTTP %ld\n",
						curl_easy_strerror(msg->data.result), r->status);
			curl_multi_remove_handle(multi, msg->easy_handle);
			curl_easy_cleanup(msg->easy_handle);
			curl_slist_free_all(r->headers);
			running--;
			done++;
		}
		if (done < n && (running >= conc || next >= n))
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	t1 = now_us();

	for (int i = 0; i < n; i++)
		lat[i] = reqs[i].end_us - reqs[i].start_us;
	qsort(lat, n, sizeof(int64_t), cmp_i64);
	{
		double		elapsed = (t1 - t0) / 1e6, sum = 0, cpu;
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		cpu = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;

		for (int i = 0; i < n; i++)
			sum += lat[i];
		printf("requests=%d ok=%d failed=%d elapsed_s=%.4f rps=%.1f p50_ms=%.3f p99_ms=%.3f "
			   "mean_ms=%.3f max_ms=%.3f mode=%s concurrency=%d cpu_us_per_request=%.1f\n",
			   n, ok, n - ok, elapsed, n / elapsed, lat[n / 2] / 1000.0,
			   lat[(int) (n * 0.99) < n ? (int) (n * 0.99) : n - 1] / 1000.0,
			   sum / n / 1000.0, lat[n - 1] / 1000.0, keepalive ? "keepalive" : "fresh", conc, cpu / n);
	}
	if (outfile)
	{
		FILE	   *f = fopen(outfile, "w");

		for (int i = 0; f && i < n; i++)
			fprintf(f, "%lld %lld %ld\n", (long long) reqs[i].start_us,
					(long long) reqs[i].end_us, reqs[i].status);
		if (f)
			fclose(f);
	}
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return ok == n ? 0 : 1;
}
