/* C shim: DPDK's static inline functions and macros, exported as real
 * symbols so Rust can call them without reimplementing them. */
#ifndef DPDK_SYS_SHIM_H
#define DPDK_SYS_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

/* errno and lcore (per-lcore TLS variables in DPDK) */
int dpdk_sys_rte_errno(void);
void dpdk_sys_set_rte_errno(int value);
unsigned int dpdk_sys_lcore_id(void);
uint64_t dpdk_sys_tsc_cycles(void);
void dpdk_sys_pause(void);

/* ethdev fast path */
uint16_t dpdk_sys_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t dpdk_sys_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t dpdk_sys_eth_tx_prepare(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* mbuf */
struct rte_mbuf *dpdk_sys_pktmbuf_alloc(struct rte_mempool *mp);
int dpdk_sys_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void dpdk_sys_pktmbuf_free(struct rte_mbuf *m);
void dpdk_sys_pktmbuf_free_seg(struct rte_mbuf *m);
void dpdk_sys_pktmbuf_reset(struct rte_mbuf *m);
struct rte_mbuf *dpdk_sys_mbuf_raw_alloc(struct rte_mempool *mp);
void dpdk_sys_mbuf_raw_free(struct rte_mbuf *m);
uint16_t dpdk_sys_mbuf_refcnt_read(const struct rte_mbuf *m);
void dpdk_sys_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v);
uint16_t dpdk_sys_pktmbuf_priv_size(struct rte_mempool *mp);
uint16_t dpdk_sys_pktmbuf_data_room_size(struct rte_mempool *mp);
uint32_t dpdk_sys_pktmbuf_priv_flags(struct rte_mempool *mp);
char *dpdk_sys_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
/* The IP and L4 checksum verdicts of a one-segment packet, computed in
 * software (RTE_MBUF_F_RX_IP_CKSUM_* | RTE_MBUF_F_RX_L4_CKSUM_*; UNKNOWN
 * for what it cannot tell). Reads nothing beyond the mbuf's data. */
uint64_t dpdk_sys_sw_rx_cksum(struct rte_mbuf *m);

/* mempool */
int dpdk_sys_mempool_get_bulk(struct rte_mempool *mp, void **objs, unsigned int n);
void dpdk_sys_mempool_put_bulk(struct rte_mempool *mp, void *const *objs, unsigned int n);
/* Empties every lcore cache of mp into its backend. Only while no lcore
 * uses the pool. */
void dpdk_sys_mempool_flush_caches(struct rte_mempool *mp);
struct rte_mempool_ops *dpdk_sys_mempool_get_ops(int ops_index);
void *dpdk_sys_mempool_get_priv(struct rte_mempool *mp);
struct rte_mempool_memhdr *dpdk_sys_mempool_first_memhdr(struct rte_mempool *mp);

/* ring */
unsigned int dpdk_sys_ring_enqueue_bulk(struct rte_ring *r, void *const *objs, unsigned int n, unsigned int *free_space);
unsigned int dpdk_sys_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n, unsigned int *free_space);
unsigned int dpdk_sys_ring_dequeue_bulk(struct rte_ring *r, void **objs, unsigned int n, unsigned int *available);
unsigned int dpdk_sys_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n, unsigned int *available);
unsigned int dpdk_sys_ring_count(const struct rte_ring *r);

/* ethdev driver helpers that are macros or inline */
#ifdef DPDK_SYS_SDK
void *dpdk_sys_eth_dev_private(struct rte_eth_dev *dev);
int dpdk_sys_eth_linkstatus_set(struct rte_eth_dev *dev, int up, uint32_t speed);
#endif
/* rte_eth_link's fields: bitfields, inside a union since 24.11 */
int dpdk_sys_eth_link_up(const struct rte_eth_link *link);
uint32_t dpdk_sys_eth_link_speed(const struct rte_eth_link *link);

/* EAL private: grow an internal malloc heap (socket) with external memory.
 * Returns 0 on success, a negative errno value otherwise. Only present
 * when built with the EAL private headers (cfg dpdk_eal_private). */
int dpdk_sys_heap_grow(int socket_id, void *va, size_t len, size_t page_sz);

/* Layout probe: C's view of struct sizes and field offsets. */
struct dpdk_sys_layout_entry {
	const char *name;
	size_t value;
};
const struct dpdk_sys_layout_entry *dpdk_sys_layout_table(size_t *count);

/* rte_flow steering (shim.c): one flat description of what to match. */
#define DPDK_SYS_FLOW_ETH_DST 0x01
#define DPDK_SYS_FLOW_VLAN 0x02
#define DPDK_SYS_FLOW_IPV4 0x04
#define DPDK_SYS_FLOW_IPV6 0x08
#define DPDK_SYS_FLOW_IP_DST 0x10
#define DPDK_SYS_FLOW_UDP_DST 0x20
#define DPDK_SYS_FLOW_TCP_DST 0x40
struct dpdk_sys_flow_match {
	uint32_t fields;      /* DPDK_SYS_FLOW_* */
	uint8_t eth_dst[6];
	uint16_t vlan_id;
	uint32_t ipv4_dst;    /* network order */
	uint8_t ipv6_dst[16];
	uint16_t l4_dst;      /* host order */
};
struct rte_flow;
struct rte_flow_error;
/* Validates, then (unless validate_only) creates an ingress rule: what m
 * matches goes to rx queue `queue`, or with rss_n > 0 is spread by RSS
 * (hash functions rss_types, the PMD's key) over the rss_n queues at
 * rss_queues; counted if `count`. NULL and err set if the PMD refuses;
 * (void *)1 for a rule that validated only. */
struct rte_flow *dpdk_sys_flow_create(uint16_t port, const struct dpdk_sys_flow_match *m,
		uint16_t queue, const uint16_t *rss_queues, uint16_t rss_n, uint64_t rss_types,
		int count, int validate_only, struct rte_flow_error *err);
/* The rule's COUNT hits: 0, or a negative errno (-ENOTSUP: not counted). */
int dpdk_sys_flow_hits(uint16_t port, struct rte_flow *flow, uint64_t *hits,
		struct rte_flow_error *err);

#endif
