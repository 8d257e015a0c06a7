/*
 * c2c CPU_A CPU_B SECONDS: round trip of one cache line between two CPUs.
 *
 * Two threads, pinned one per CPU, bounce a counter in one cache line. The
 * round trip tells whether the two CPUs share a last-level cache: on a VM
 * the host may move vCPUs between core complexes while a run goes on, and
 * every two-process datapath (shm, memif, vhost) moves its descriptors and
 * packet lines between the two cores. bench/run.py runs this right after
 * each measurement window, with the measured processes stopped.
 *
 * Prints the median and the minimum round trip in ns over 20 slices.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SLICES 20

static volatile uint64_t ping __attribute__((aligned(64)));
static volatile uint64_t pong __attribute__((aligned(64)));
static volatile int done __attribute__((aligned(64)));

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void *responder(void *arg)
{
	uint64_t seen = 0;

	if (pin(*(int *)arg) != 0) {
		fprintf(stderr, "c2c: cannot pin to CPU %d\n", *(int *)arg);
		exit(1);
	}
	while (!done) {
		uint64_t v = ping;

		if (v != seen) {
			seen = v;
			pong = v;
		}
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	pthread_t t;
	int a, b;
	double secs, rtt[SLICES];
	uint64_t i = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: c2c CPU_A CPU_B SECONDS\n");
		return 2;
	}
	a = atoi(argv[1]);
	b = atoi(argv[2]);
	secs = atof(argv[3]);
	if (pin(a) != 0) {
		fprintf(stderr, "c2c: cannot pin to CPU %d\n", a);
		return 1;
	}
	if (pthread_create(&t, NULL, responder, &b) != 0)
		return 1;
	for (int s = 0; s < SLICES; s++) {
		double t0 = now(), t1;
		uint64_t n = 0;

		do {
			for (int k = 0; k < 256; k++) {
				ping = ++i;
				while (pong != i)
					;
			}
			n += 256;
			t1 = now();
		} while (t1 - t0 < secs / SLICES);
		rtt[s] = (t1 - t0) * 1e9 / n;
	}
	done = 1;
	pthread_join(t, NULL);
	qsort(rtt, SLICES, sizeof(rtt[0]), cmp);
	printf("%.1f %.1f\n", (rtt[SLICES / 2 - 1] + rtt[SLICES / 2]) / 2, rtt[0]);
	return 0;
}
