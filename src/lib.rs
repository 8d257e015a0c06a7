//! The loadable DPDK plugin (`librte_sock_shm.so.<DPDK ABI>`): the `sock` bus, the
//! `shared_mem` mempool and the `net_shm` PMD in one object that EAL loads
//! with `-d`. They register from an ELF constructor, as DPDK's own drivers
//! do with RTE_INIT.

extern "C" fn register_drivers() {
    // Panics must not unwind into the dynamic loader.
    let _ = std::panic::catch_unwind(|| {
        // A second copy of the plugin registers nothing.
        if bus_shm::guest::register_bus() {
            mempool_shm::register();
            net_shm::register();
        }
    });
}

#[used]
#[link_section = ".init_array"]
static REGISTER: extern "C" fn() = register_drivers;
