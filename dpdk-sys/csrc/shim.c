/* See shim.h. Each function is a thin call of the DPDK inline it names. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_ethdev.h>
#ifdef DPDK_SYS_SDK
#include <ethdev_driver.h>
#endif
#include <rte_net.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include "shim.h"

int dpdk_sys_rte_errno(void) { return rte_errno; }
void dpdk_sys_set_rte_errno(int value) { rte_errno = value; }
unsigned int dpdk_sys_lcore_id(void) { return rte_lcore_id(); }
uint64_t dpdk_sys_tsc_cycles(void) { return rte_get_tsc_cycles(); }
void dpdk_sys_pause(void) { rte_pause(); }

uint16_t dpdk_sys_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t dpdk_sys_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }
uint16_t dpdk_sys_eth_tx_prepare(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_prepare(port, queue, pkts, n); }

struct rte_mbuf *dpdk_sys_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int dpdk_sys_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, n); }
void dpdk_sys_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void dpdk_sys_pktmbuf_free_seg(struct rte_mbuf *m) { rte_pktmbuf_free_seg(m); }
void dpdk_sys_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }
struct rte_mbuf *dpdk_sys_mbuf_raw_alloc(struct rte_mempool *mp) { return rte_mbuf_raw_alloc(mp); }
void dpdk_sys_mbuf_raw_free(struct rte_mbuf *m) { rte_mbuf_raw_free(m); }
uint16_t dpdk_sys_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
void dpdk_sys_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v) { rte_mbuf_refcnt_set(m, v); }
uint16_t dpdk_sys_pktmbuf_priv_size(struct rte_mempool *mp) { return rte_pktmbuf_priv_size(mp); }
uint16_t dpdk_sys_pktmbuf_data_room_size(struct rte_mempool *mp) { return rte_pktmbuf_data_room_size(mp); }
uint32_t dpdk_sys_pktmbuf_priv_flags(struct rte_mempool *mp) { return rte_pktmbuf_priv_flags(mp); }
char *dpdk_sys_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

int dpdk_sys_mempool_get_bulk(struct rte_mempool *mp, void **objs, unsigned int n)
{ return rte_mempool_get_bulk(mp, objs, n); }
void dpdk_sys_mempool_put_bulk(struct rte_mempool *mp, void *const *objs, unsigned int n)
{ rte_mempool_put_bulk(mp, objs, n); }
void dpdk_sys_mempool_flush_caches(struct rte_mempool *mp)
{
	unsigned int i;

	if (mp->cache_size == 0)
		return;
	for (i = 0; i < RTE_MAX_LCORE; i++)
		if (mp->local_cache[i].len > 0)
			rte_mempool_cache_flush(&mp->local_cache[i], mp);
}
struct rte_mempool_ops *dpdk_sys_mempool_get_ops(int ops_index) { return rte_mempool_get_ops(ops_index); }
void *dpdk_sys_mempool_get_priv(struct rte_mempool *mp) { return rte_mempool_get_priv(mp); }
struct rte_mempool_memhdr *dpdk_sys_mempool_first_memhdr(struct rte_mempool *mp)
{ return STAILQ_FIRST(&mp->mem_list); }

unsigned int dpdk_sys_ring_enqueue_bulk(struct rte_ring *r, void *const *objs, unsigned int n, unsigned int *free_space)
{ return rte_ring_enqueue_bulk(r, objs, n, free_space); }
unsigned int dpdk_sys_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n, unsigned int *free_space)
{ return rte_ring_enqueue_burst(r, objs, n, free_space); }
unsigned int dpdk_sys_ring_dequeue_bulk(struct rte_ring *r, void **objs, unsigned int n, unsigned int *available)
{ return rte_ring_dequeue_bulk(r, objs, n, available); }
unsigned int dpdk_sys_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n, unsigned int *available)
{ return rte_ring_dequeue_burst(r, objs, n, available); }
unsigned int dpdk_sys_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

#ifdef DPDK_SYS_SDK
void *dpdk_sys_eth_dev_private(struct rte_eth_dev *dev) { return dev->data->dev_private; }
int dpdk_sys_eth_linkstatus_set(struct rte_eth_dev *dev, int up, uint32_t speed)
{
	struct rte_eth_link link = {
		.link_speed = up ? speed : RTE_ETH_SPEED_NUM_NONE,
		.link_duplex = RTE_ETH_LINK_FULL_DUPLEX,
		.link_autoneg = RTE_ETH_LINK_FIXED,
		.link_status = up ? RTE_ETH_LINK_UP : RTE_ETH_LINK_DOWN,
	};
	return rte_eth_linkstatus_set(dev, &link);
}
#endif
int dpdk_sys_eth_link_up(const struct rte_eth_link *link) { return link->link_status; }
uint32_t dpdk_sys_eth_link_speed(const struct rte_eth_link *link) { return link->link_speed; }

uint64_t dpdk_sys_sw_rx_cksum(struct rte_mbuf *m)
{
	struct rte_net_hdr_lens hl;
	uint32_t ptype = rte_net_get_ptype(m, &hl,
		RTE_PTYPE_L2_MASK | RTE_PTYPE_L3_MASK | RTE_PTYPE_L4_MASK);
	uint32_t len = rte_pktmbuf_data_len(m);
	uint64_t f = 0;
	uint32_t l4 = ptype & RTE_PTYPE_L4_MASK;
	int l4_known = l4 == RTE_PTYPE_L4_TCP || l4 == RTE_PTYPE_L4_UDP;

	if (m->nb_segs != 1 || hl.l2_len + hl.l3_len > len)
		return 0;
	if (RTE_ETH_IS_IPV4_HDR(ptype)) {
		const struct rte_ipv4_hdr *ip =
			rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, hl.l2_len);
		uint32_t total = rte_be_to_cpu_16(ip->total_length);
		f |= rte_raw_cksum(ip, hl.l3_len) == 0xffff ?
			RTE_MBUF_F_RX_IP_CKSUM_GOOD : RTE_MBUF_F_RX_IP_CKSUM_BAD;
		/* The L4 sum covers what total_length says: only if it is there. */
		if (!l4_known || total < hl.l3_len + hl.l4_len || hl.l2_len + total > len)
			return f;
		const void *l4h = (const char *)ip + hl.l3_len;
		if (l4 == RTE_PTYPE_L4_UDP && ((const struct rte_udp_hdr *)l4h)->dgram_cksum == 0)
			return f | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
		return f | (rte_ipv4_udptcp_cksum_verify(ip, l4h) == 0 ?
			RTE_MBUF_F_RX_L4_CKSUM_GOOD : RTE_MBUF_F_RX_L4_CKSUM_BAD);
	}
	if (RTE_ETH_IS_IPV6_HDR(ptype)) {
		const struct rte_ipv6_hdr *ip =
			rte_pktmbuf_mtod_offset(m, const struct rte_ipv6_hdr *, hl.l2_len);
		uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
		/* Extension headers sit between: l3_len covers them. */
		if (!l4_known || sizeof(*ip) + payload < hl.l3_len + hl.l4_len ||
				hl.l2_len + sizeof(*ip) + payload > len)
			return 0;
		const void *l4h = (const char *)ip + hl.l3_len;
		if (hl.l3_len != sizeof(*ip))
			return 0; /* the verify helper assumes no extension headers */
		return rte_ipv6_udptcp_cksum_verify(ip, l4h) == 0 ?
			RTE_MBUF_F_RX_L4_CKSUM_GOOD : RTE_MBUF_F_RX_L4_CKSUM_BAD;
	}
	return 0;
}

/* rte_flow steering: the pattern and actions built here, in C, from one
 * flat description, since the item structs differ between releases
 * (unions and bitfields; 24.11 made IPv6 addresses a struct). */
#include <string.h>
#include <rte_flow.h>

struct rte_flow *dpdk_sys_flow_create(uint16_t port, const struct dpdk_sys_flow_match *m,
		uint16_t queue, const uint16_t *rss_queues, uint16_t rss_n, uint64_t rss_types,
		int count, int validate_only, struct rte_flow_error *err)
{
	struct rte_flow_attr attr = { .ingress = 1 };
	struct rte_flow_item_eth eth = { 0 }, eth_mask = { 0 };
	struct rte_flow_item_vlan vlan = { 0 }, vlan_mask = { 0 };
	struct rte_flow_item_ipv4 ip4 = { 0 }, ip4_mask = { 0 };
	struct rte_flow_item_ipv6 ip6 = { 0 }, ip6_mask = { 0 };
	struct rte_flow_item_udp udp = { 0 }, udp_mask = { 0 };
	struct rte_flow_item_tcp tcp = { 0 }, tcp_mask = { 0 };
	struct rte_flow_item items[6];
	struct rte_flow_action_queue to = { .index = queue };
	struct rte_flow_action_rss rss = {
		.func = RTE_ETH_HASH_FUNCTION_DEFAULT,
		.types = rss_types,
		.queue_num = rss_n,
		.queue = rss_queues,
	};
	struct rte_flow_action_count counter = { 0 };
	struct rte_flow_action actions[3];
	int n = 0, a = 0;

	memset(items, 0, sizeof(items));
	memset(actions, 0, sizeof(actions));
	items[n].type = RTE_FLOW_ITEM_TYPE_ETH;
	if (m->fields & DPDK_SYS_FLOW_ETH_DST) {
		memcpy(eth.hdr.dst_addr.addr_bytes, m->eth_dst, 6);
		memset(eth_mask.hdr.dst_addr.addr_bytes, 0xff, 6);
		items[n].spec = &eth;
		items[n].mask = &eth_mask;
	}
	n++;
	if (m->fields & DPDK_SYS_FLOW_VLAN) {
		vlan.hdr.vlan_tci = rte_cpu_to_be_16(m->vlan_id);
		vlan_mask.hdr.vlan_tci = rte_cpu_to_be_16(0x0fff);
		items[n].type = RTE_FLOW_ITEM_TYPE_VLAN;
		items[n].spec = &vlan;
		items[n].mask = &vlan_mask;
		n++;
	}
	if (m->fields & DPDK_SYS_FLOW_IPV6) {
		items[n].type = RTE_FLOW_ITEM_TYPE_IPV6;
		if (m->fields & DPDK_SYS_FLOW_IP_DST) {
			memcpy(&ip6.hdr.dst_addr, m->ipv6_dst, 16);
			memset(&ip6_mask.hdr.dst_addr, 0xff, 16);
			items[n].spec = &ip6;
			items[n].mask = &ip6_mask;
		}
		n++;
	} else if (m->fields & DPDK_SYS_FLOW_IPV4) {
		items[n].type = RTE_FLOW_ITEM_TYPE_IPV4;
		if (m->fields & DPDK_SYS_FLOW_IP_DST) {
			ip4.hdr.dst_addr = m->ipv4_dst;
			ip4_mask.hdr.dst_addr = 0xffffffff;
			items[n].spec = &ip4;
			items[n].mask = &ip4_mask;
		}
		n++;
	}
	if (m->fields & DPDK_SYS_FLOW_UDP_DST) {
		udp.hdr.dst_port = rte_cpu_to_be_16(m->l4_dst);
		udp_mask.hdr.dst_port = 0xffff;
		items[n].type = RTE_FLOW_ITEM_TYPE_UDP;
		items[n].spec = &udp;
		items[n].mask = &udp_mask;
		n++;
	} else if (m->fields & DPDK_SYS_FLOW_TCP_DST) {
		tcp.hdr.dst_port = rte_cpu_to_be_16(m->l4_dst);
		tcp_mask.hdr.dst_port = 0xffff;
		items[n].type = RTE_FLOW_ITEM_TYPE_TCP;
		items[n].spec = &tcp;
		items[n].mask = &tcp_mask;
		n++;
	}
	items[n].type = RTE_FLOW_ITEM_TYPE_END;
	if (count) {
		actions[a].type = RTE_FLOW_ACTION_TYPE_COUNT;
		actions[a].conf = &counter;
		a++;
	}
	if (rss_n > 0) {
		actions[a].type = RTE_FLOW_ACTION_TYPE_RSS;
		actions[a].conf = &rss;
	} else {
		actions[a].type = RTE_FLOW_ACTION_TYPE_QUEUE;
		actions[a].conf = &to;
	}
	a++;
	actions[a].type = RTE_FLOW_ACTION_TYPE_END;
	if (rte_flow_validate(port, &attr, items, actions, err) != 0)
		return NULL;
	if (validate_only)
		return (struct rte_flow *)(uintptr_t)1;
	return rte_flow_create(port, &attr, items, actions, err);
}

int dpdk_sys_flow_hits(uint16_t port, struct rte_flow *flow, uint64_t *hits,
		struct rte_flow_error *err)
{
	struct rte_flow_query_count q = { 0 };
	struct rte_flow_action count[2] = {
		{ .type = RTE_FLOW_ACTION_TYPE_COUNT },
		{ .type = RTE_FLOW_ACTION_TYPE_END },
	};
	int r = rte_flow_query(port, flow, count, &q, err);

	if (r == 0) {
		if (!q.hits_set)
			return -ENOTSUP;
		*hits = q.hits;
	}
	return r;
}
