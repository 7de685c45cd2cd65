#!/usr/bin/env bash
# Loss and duplication on a TUN device with nftables, as used by tests/tun_kernel_loss.rs and
# `cargo bench --bench loss`. Run it in the network namespace where the device lives (the
# tests and the bench run it in their own).
#
#   loss.sh on LOSS [DUP] [DEV]   drop LOSS % of the packets each way, send DUP % of those
#                                 reaching the stack twice (integers; DEV defaults to tun0)
#   loss.sh counters              print `name packets` for each counter
#   loss.sh reset                 zero the counters
#   loss.sh off                   remove the rules
# GSO_SEGS=N before `on` sets tun0's gso_max_segs (default 1, see below; 65535 restores the
# kernel's 64 KiB bundles, where one decision drops a whole burst).
#
# On a TUN device, netdev ingress sees what the user-space stack writes (towards the kernel),
# netdev egress what the kernel transmits (towards the stack). Two details make this a lossy
# link rather than something the kernel's TCP can see:
# - A `drop` at egress is reported to the sending socket (NET_XMIT_DROP): Linux's TCP then
#   enters CWR and simply sends the segment again, it never sees a loss. So egress "drops"
#   are forwarded (`fwd`) to a veth whose peer is down, which discards them; to the socket
#   the packet left.
# - TCP hands the device 64 KiB GSO bundles, segmented after the egress hook: one decision
#   would drop or duplicate ~44 segments at once. gso_max_segs 1 makes each one a segment;
#   the price is the kernel sender's own per-segment cost (about 6x slower without loss).
set -euo pipefail

table=netstack_loss
bh=nsloss_bh # the discarding veth
names=(to_kernel to_kernel_dropped to_stack to_stack_dropped to_stack_duplicated)

usage() {
    sed -n '6,10s/^# \{0,3\}//p' "$0" >&2
    exit 2
}

case "${1:-}" in
on)
    [[ $# -ge 2 ]] || usage
    loss=$2
    dup=${3:-0}
    dev=${4:-tun0}
    [[ $loss =~ ^[0-9]+$ && $dup =~ ^[0-9]+$ && $loss -le 100 && $dup -le 100 ]] || usage
    ip link show "$bh" >/dev/null 2>&1 || ip link add "$bh" type veth peer name "${bh}1"
    ip link set "$bh" up
    ip link set dev "$dev" gso_max_segs "${GSO_SEGS:-1}"
    nft delete table netdev "$table" 2>/dev/null || true
    nft -f - <<EOF
table netdev $table {
	counter to_kernel {}
	counter to_kernel_dropped {}
	counter to_stack {}
	counter to_stack_dropped {}
	counter to_stack_duplicated {}

	chain ingress {
		type filter hook ingress device "$dev" priority 0; policy accept;
		counter name "to_kernel"
		numgen random mod 100 < $loss counter name "to_kernel_dropped" drop
	}

	chain egress {
		type filter hook egress device "$dev" priority 0; policy accept;
		# Duplicates are marked: should one pass this hook again, it is left alone.
		meta mark 0x4e53 accept
		counter name "to_stack"
		numgen random mod 100 < $loss counter name "to_stack_dropped" fwd to "$bh"
		numgen random mod 100 < $dup counter name "to_stack_duplicated" meta mark set 0x4e53 dup to "$dev"
	}
}
EOF
    ;;
counters)
    for n in "${names[@]}"; do
        p=$(nft list counter netdev "$table" "$n" | awk '$1 == "packets" { print $2 }')
        echo "$n ${p:?no counter $n}"
    done
    ;;
reset)
    nft reset counters table netdev "$table" >/dev/null
    ;;
off)
    nft delete table netdev "$table" 2>/dev/null || true
    ip link del "$bh" 2>/dev/null || true
    ;;
*)
    usage
    ;;
esac
