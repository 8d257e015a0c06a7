//! Steering by rte_flow (`add flow`): what the NIC cannot do is refused
//! with the PMD's own message, nothing is half-applied and the proxy goes
//! on serving. net_tap implements rte_flow through TC, but only with the
//! kernel's multiq qdisc; this machine's kernel has none (net_tap says
//! "Disabling rte flow support"), so here every rule is refused by the
//! PMD. net_null has no rte_flow at all.
mod common;
use common::*;

#[test]
fn a_flow_the_nic_cannot_do_is_refused_with_the_pmds_message() {
    let iface = "iop_flowtap";
    let text = proxy_at_prompt(
        "flowtap",
        &format!("net_tap0,iface={iface}"),
        "add port 0 queues 2\nadd socket /tmp/iop-flowtap/a/sock 0 0\nadd socket /tmp/iop-flowtap/b/sock 0 1\n",
        &[
            "add flow 0 udp dst 2001 queue 1",
            "add flow 0 eth dst 02:00:00:00:00:07 vlan 100 queue 1",
            "add flow 0 udp dst 2001 queue 5",
            "add flow 0 ipv4 dst 10.0.0.7 rss 0,1",
            "add flow 0 ipv4 rss 0,7",
            "add flow 0 udp dst 2001",
            "show flows",
            "remove flow 0 1",
            "show sockets",
        ],
    );
    assert!(
        text.contains("Disabling rte flow support"),
        "net_tap has rte_flow on this kernel: this test expects it refused\n{text}"
    );
    // The PMD's own words, after what was asked.
    assert!(
        text.contains("error: port 0: flow udp dst 2001 -> queue 1: overlapping rules or Kernel too old for flower support"),
        "{text}"
    );
    assert!(
        text.contains("error: port 0: flow eth dst 02:00:00:00:00:07 vlan 100 -> queue 1: "),
        "{text}"
    );
    assert!(
        text.contains("error: port 0 has 2 queues: no queue 5"),
        "{text}"
    );
    assert!(
        text.contains("error: port 0: flow ipv4 dst 10.0.0.7 -> rss 0-1: "),
        "{text}"
    );
    assert!(
        text.contains("error: port 0 has 2 queues: no queue 7"),
        "{text}"
    );
    assert!(
        text.contains("error: add flow: missing 'queue <q>' or 'rss <queues>'"),
        "{text}"
    );
    assert!(
        text.contains("no flows"),
        "a refused rule was kept:\n{text}"
    );
    assert!(text.contains("error: port 0 has no flow 1"), "{text}");
    assert!(
        text.contains("/tmp/iop-flowtap/b/sock"),
        "show sockets did not run after the refusals:\n{text}"
    );
}

#[test]
fn a_nic_without_rte_flow_refuses_every_rule() {
    let text = proxy_at_prompt(
        "flownull",
        "net_null0",
        "add port 0 queues 1\n",
        &[
            "add flow 0 ipv6 dst fd00::1 tcp dst 80 queue 0",
            "show flows",
        ],
    );
    assert!(
        text.contains("error: port 0: flow ipv6 dst fd00::1 tcp dst 80 -> queue 0: "),
        "{text}"
    );
    assert!(text.contains("no flows"), "{text}");
}
