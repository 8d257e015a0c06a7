/*
 * pipeline [EAL options] -- macswap|io [IN_FLIGHT]
 *
 * The bench's "pipeline" peer: the ceiling's work split over the two
 * cores, in one process. Two lcores:
 *
 *   lcore A (the first): rx burst from port 0 -> ring -> lcore B
 *   lcore B (the second): the forwarding mode on each mbuf -> ring -> A
 *   lcore A: tx burst of what came back to port 0
 *
 * Single-producer single-consumer rte_rings of mbuf pointers, bursts of
 * 32, and nothing else: no process boundary, no offsets, no validation,
 * no second mempool. Every two-process datapath (shm, memif, vhost) hands
 * each packet to the other core and back too, and does more. In io mode B
 * touches no packet, so against the ceiling (the same rx and tx on one
 * core, buffers reused while hot) it measures the price of the handoff
 * alone. In macswap B reads the mbuf header and writes the first payload
 * line, as a worker lcore of a DPDK pipeline does.
 *
 * A keeps at most IN_FLIGHT packets (default 256; what circulates in
 * dpdk-io-proxy with net_null is 224) between its rx and its tx: a NIC
 * queue without free descriptors receives nothing, and with a ring's worth
 * (1023) in flight the buffers outgrow the L2 cache at 1518 B. Nothing is
 * received only to be dropped. Counters: the port's, through EAL telemetry
 * (bench/run.py reads opackets). Runs until SIGINT or SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#define BURST 32
#define RING_SIZE 1024
#define NB_MBUF 8191
#define MBUF_CACHE 256

static volatile int quit;
static struct rte_ring *to_worker, *to_nic;
static int macswap;
static unsigned int max_in_flight = 256;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

/* Lcore B: the forwarding mode, straight back. */
static int worker(void *arg)
{
	struct rte_mbuf *pkts[BURST];

	(void)arg;
	while (!quit) {
		unsigned int n = rte_ring_sc_dequeue_burst(to_worker, (void **)pkts, BURST, NULL);

		/* Headers, then the first payload lines, all in flight at once:
		 * both were last written on the other core. io touches neither. */
		if (macswap) {
			for (unsigned int i = 0; i < n; i++)
				rte_prefetch0(pkts[i]);
			for (unsigned int i = 0; i < n; i++)
				rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
			for (unsigned int i = 0; i < n; i++) {
				struct rte_ether_hdr *eth = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);
				struct rte_ether_addr a = eth->dst_addr;

				eth->dst_addr = eth->src_addr;
				eth->src_addr = a;
			}
		}
		/* to_nic has room for every mbuf in flight (see nic()). */
		if (n)
			rte_ring_sp_enqueue_burst(to_nic, (void **)pkts, n, NULL);
	}
	return 0;
}

/* Lcore A: the NIC's rx and tx. */
static void nic(uint16_t port)
{
	struct rte_mbuf *rx[BURST], *tx[BURST];
	unsigned int in_flight = 0;

	while (!quit) {
		/* Never more in flight than a ring holds: the worker's
		 * enqueue always fits. */
		unsigned int room = max_in_flight - in_flight;
		uint16_t n = rte_eth_rx_burst(port, 0, rx, room < BURST ? room : BURST);

		if (n)
			rte_ring_sp_enqueue_burst(to_worker, (void **)rx, n, NULL);
		unsigned int k = rte_ring_sc_dequeue_burst(to_nic, (void **)tx, BURST, NULL);

		in_flight += n - k;
		/* The NIC copies these out next; in macswap the worker wrote
		 * their first lines. */
		for (unsigned int i = 0; i < k; i++)
			rte_prefetch0(rte_pktmbuf_mtod(tx[i], void *));
		uint16_t sent = k ? rte_eth_tx_burst(port, 0, tx, k) : 0;

		if (sent < k)
			rte_pktmbuf_free_bulk(&tx[sent], k - sent);
	}
}

int main(int argc, char **argv)
{
	struct rte_eth_conf conf;
	struct rte_mempool *mp;
	unsigned int worker_lcore;
	int used = rte_eal_init(argc, argv);
	uint16_t port = 0;

	if (used < 0) {
		fprintf(stderr, "pipeline: EAL init failed\n");
		return 1;
	}
	argc -= used;
	argv += used;
	if (argc < 2 || argc > 3 || (strcmp(argv[1], "macswap") != 0 && strcmp(argv[1], "io") != 0) ||
	    (argc == 3 && (atoi(argv[2]) < BURST || atoi(argv[2]) > RING_SIZE - 1))) {
		fprintf(stderr, "usage: pipeline [EAL options] -- macswap|io [IN_FLIGHT %d..%d]\n", BURST,
			RING_SIZE - 1);
		return 2;
	}
	if (argc == 3)
		max_in_flight = atoi(argv[2]);
	macswap = strcmp(argv[1], "macswap") == 0;
	worker_lcore = rte_get_next_lcore(rte_lcore_id(), 1, 0);
	if (worker_lcore >= RTE_MAX_LCORE || rte_eth_dev_count_avail() < 1) {
		fprintf(stderr, "pipeline: needs two lcores and a port\n");
		return 2;
	}
	mp = rte_pktmbuf_pool_create("pipeline", NB_MBUF, MBUF_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				     rte_socket_id());
	to_worker = rte_ring_create("to_worker", RING_SIZE, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
	to_nic = rte_ring_create("to_nic", RING_SIZE, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (mp == NULL || to_worker == NULL || to_nic == NULL) {
		fprintf(stderr, "pipeline: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	memset(&conf, 0, sizeof(conf));
	if (rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
	    rte_eth_rx_queue_setup(port, 0, 512, rte_eth_dev_socket_id(port), NULL, mp) != 0 ||
	    rte_eth_tx_queue_setup(port, 0, 512, rte_eth_dev_socket_id(port), NULL) != 0 ||
	    rte_eth_dev_start(port) != 0) {
		fprintf(stderr, "pipeline: cannot start port %u\n", port);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	rte_eal_remote_launch(worker, NULL, worker_lcore);
	printf("pipeline: forwarding, lcore %u -> lcore %u (%s) -> lcore %u\n", rte_lcore_id(), worker_lcore,
	       argv[1], rte_lcore_id());
	fflush(stdout);
	nic(port);
	rte_eal_mp_wait_lcore();
	rte_eth_dev_stop(port);
	rte_eal_cleanup();
	return 0;
}
