/* Grow an internal (per-socket) malloc heap with memory we mapped ourselves.
 *
 * Why: a guest started with --no-huge -m1 has a 1 MiB socket heap, and stock
 * apps (testpmd) allocate far more than that before they ever touch a port.
 * The sock bus backs the guest's heap with the proxy's shared memory.
 * DPDK 22.11 has a public call to add memory to a heap,
 * rte_malloc_heap_memory_add(), but it refuses internal heaps. Internal heaps
 * are told apart only by socket_id < RTE_MAX_NUMA_NODES, so we present the
 * heap as external for the duration of the call and put its id back. This
 * needs struct malloc_heap from the matching DPDK source (EAL private
 * headers), and must run while no other thread allocates (bus probe, during
 * rte_eal_init).
 */
#include <errno.h>
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include "malloc_elem.h"
#include "malloc_heap.h"
#include "shim.h"

int dpdk_sys_heap_grow(int socket_id, void *va, size_t len, size_t page_sz)
{
	if (socket_id < 0 || socket_id >= RTE_MAX_NUMA_NODES)
		return -EINVAL;
	/* Find the heap through the header of an element allocated from it. */
	void *probe = rte_malloc_socket(NULL, 1, 0, socket_id);
	if (probe == NULL)
		return -ENOMEM;
	struct malloc_elem *elem = malloc_elem_from_data(probe);
	struct malloc_heap *heap = elem != NULL ? elem->heap : NULL;
	rte_free(probe);
	if (heap == NULL || heap->socket_id != (unsigned int)socket_id)
		return -EFAULT;

	unsigned int saved = heap->socket_id;
	heap->socket_id = RTE_MAX_NUMA_NODES;
	int ret = rte_malloc_heap_memory_add(heap->name, va, len, NULL,
					     len / page_sz, page_sz);
	int err = rte_errno;
	heap->socket_id = saved;
	if (ret != 0)
		return -err;
	struct rte_memseg_list *msl = rte_mem_virt2memseg_list(va);
	if (msl != NULL)
		msl->socket_id = socket_id;
	return 0;
}
