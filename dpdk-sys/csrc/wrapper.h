/* Everything bindgen sees: DPDK's public API, the driver SDK (with the
 * driver-sdk feature: DPDK_SYS_SDK), our shim. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_log.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_memzone.h>
#include <rte_interrupts.h>
#include <rte_alarm.h>
#include <rte_kvargs.h>
#include <rte_devargs.h>
#include <rte_dev.h>
#include <rte_bus.h>
#ifdef DPDK_SYS_SDK
#include <bus_driver.h>
#include <bus_vdev_driver.h>
#include <dev_driver.h>
#endif
#include <rte_ether.h>
#include <rte_ethdev.h>
#ifdef DPDK_SYS_SDK
#include <ethdev_driver.h>
#endif
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_telemetry.h>
#include <rte_version.h>
#include "shim.h"
