/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The drivers themselves are Rust (rte_net_shm_rust.o, built by
 * cargo-build.sh). This file only names the PMD and its devargs the way
 * C drivers do, so that pmdinfogen and dpdk-pmdinfo.py describe it.
 */
#include <rte_dev.h>

RTE_PMD_EXPORT_NAME(net_shm, __COUNTER__);
RTE_PMD_REGISTER_PARAM_STRING(net_shm, "path=<socket> recycle=<0|1> reconnect=<ms>");
