#!/usr/bin/env bash
# redirect-inpod.sh: in-pod mode's traffic redirection, applied inside one
# pod's network namespace (what istio-cni installs in every ambient pod):
#
#   ip netns exec POD cni/redirect-inpod.sh [--dns]   install (idempotent)
#   ip netns exec POD cni/redirect-inpod.sh --remove  take it all out again
#
# What it does (IPv4; docs: README, "In-pod mode on one machine"):
# - nat OUTPUT: the pod's outbound TCP goes to ztunnel's outbound listener
#   on 15001, unless it is ztunnel's own (socket mark 0x539/0xfff = 1337),
#   to 127.0.0.1, already going out lo to another local address, part of a
#   connection ztunnel accepted (connmark 0x111), or to the kubelet's probe
#   address 169.254.7.127.
# - nat PREROUTING: inbound TCP goes to the inbound plaintext listener on
#   15006, except HBONE (15008), 127.0.0.1, ztunnel's own and the kubelet's
#   probes (from 169.254.7.127).
# - with --dns: DNS (UDP 53 not out lo, TCP 53 not to 127.0.0.1, not
#   ztunnel's own) goes to ztunnel's DNS proxy on 15053.
# - mangle: packets marked 1337 arriving in PREROUTING mark their connection
#   0x111, and OUTPUT gives the connection's mark back to its packets; policy
#   routing sends packets marked 0x111 to table 100 (everything local), so
#   replies to ztunnel's transparent (original-source) sockets reach it.
#
# Chains are ISTIO_PRERT and ISTIO_OUTPUT in mangle and nat, as upstream;
# running it again rewrites them (so --dns can be added or dropped) and adds
# each jump only once. IPTABLES=iptables-legacy picks the legacy backend
# (default: `iptables`, which Debian 12 points at iptables-nft).
set -euo pipefail

readonly ZTUNNEL_MARK=0x539/0xfff    # ztunnel's pod-side sockets (SO_MARK 1337)
readonly CONN_MARK=0x111/0xfff       # connections ztunnel accepted transparently
readonly PROBE_ADDR=169.254.7.127/32 # the kubelet's health probes come SNATed from here
readonly OUTBOUND_PORT=15001 INBOUND_PORT=15006 HBONE_PORT=15008 DNS_PORT=15053
readonly ROUTE_TABLE=100 RULE_PREF=32764
readonly CHAINS=(ISTIO_PRERT ISTIO_OUTPUT)
IPT=${IPTABLES:-iptables}

usage() {
  cat <<EOF
usage: redirect-inpod.sh [--dns] | --remove
  Run inside a pod's network namespace: ip netns exec POD redirect-inpod.sh
  (no option)  install the in-pod redirection (TCP to 15001 out, 15006 in)
  --dns        also send the pod's DNS to 15053
  --remove     remove everything this script installs
  IPTABLES=iptables-legacy selects the legacy backend (default: iptables)
EOF
}

die() {
  echo "redirect-inpod.sh: $*" >&2
  exit 1
}

dns=0 remove=0
while [ $# -gt 0 ]; do
  case $1 in
    --dns) dns=1 ;;
    --remove) remove=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done
[ $dns = 1 ] && [ $remove = 1 ] && die "--dns and --remove do not go together"
[ "$(id -u)" = 0 ] || die "needs root (iptables, ip rule)"
for tool in "$IPT-save" "$IPT-restore" ip; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install iptables iproute2)"
done

# The table's current rules, as iptables-save prints them ("" if the table is
# not there yet).
saved() { "$IPT-save" -t "$1" 2>/dev/null || true; }

# Lines that (re)create our chains in table $1 with its rules from stdin,
# adding the jumps from the built-in chains unless they are already there.
table_input() {
  local table=$1 current
  current=$(saved "$table")
  echo "*$table"
  for chain in "${CHAINS[@]}"; do echo ":$chain - [0:0]"; done
  grep -qxF -- "-A PREROUTING -j ISTIO_PRERT" <<<"$current" || echo "-A PREROUTING -j ISTIO_PRERT"
  grep -qxF -- "-A OUTPUT -j ISTIO_OUTPUT" <<<"$current" || echo "-A OUTPUT -j ISTIO_OUTPUT"
  cat
  echo "COMMIT"
}

mangle_rules() {
  cat <<EOF
-A ISTIO_PRERT -m mark --mark $ZTUNNEL_MARK -j CONNMARK --set-xmark $CONN_MARK
-A ISTIO_OUTPUT -m connmark --mark $CONN_MARK -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff
EOF
}

nat_rules() {
  cat <<EOF
-A ISTIO_PRERT -s $PROBE_ADDR -p tcp -j ACCEPT
-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport $HBONE_PORT -m mark ! --mark $ZTUNNEL_MARK -j REDIRECT --to-ports $INBOUND_PORT
-A ISTIO_OUTPUT -d $PROBE_ADDR -p tcp -j ACCEPT
-A ISTIO_OUTPUT -p tcp -m connmark --mark $CONN_MARK -j ACCEPT
EOF
  if [ $dns = 1 ]; then
    cat <<EOF
-A ISTIO_OUTPUT ! -o lo -p udp -m udp --dport 53 -m mark ! --mark $ZTUNNEL_MARK -j REDIRECT --to-ports $DNS_PORT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m tcp --dport 53 -m mark ! --mark $ZTUNNEL_MARK -j REDIRECT --to-ports $DNS_PORT
EOF
  fi
  cat <<EOF
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -j ACCEPT
-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark $ZTUNNEL_MARK -j REDIRECT --to-ports $OUTBOUND_PORT
EOF
}

install_rules() {
  { mangle_rules | table_input mangle; nat_rules | table_input nat; } | "$IPT-restore" --noflush ||
    die "$IPT-restore refused the rules (are the nat, mangle, mark and CONNMARK modules available?)"
  ip route replace local 0.0.0.0/0 dev lo table $ROUTE_TABLE || die "could not add the local route in table $ROUTE_TABLE"
  if [ -z "$(ip rule show pref $RULE_PREF)" ]; then
    ip rule add fwmark $CONN_MARK pref $RULE_PREF lookup $ROUTE_TABLE || die "could not add the policy rule"
  fi
}

# Deletes every jump to our chains, then the chains themselves.
remove_table() {
  local table=$1 current input=""
  current=$(saved "$table")
  while IFS= read -r line; do
    case $line in
      "-A PREROUTING -j ISTIO_PRERT" | "-A OUTPUT -j ISTIO_OUTPUT") input+="-D ${line#-A }"$'\n' ;;
    esac
  done <<<"$current"
  for chain in "${CHAINS[@]}"; do
    grep -q "^:$chain " <<<"$current" && input+="-F $chain"$'\n'"-X $chain"$'\n'
  done
  [ -z "$input" ] && return 0
  printf '*%s\n%sCOMMIT\n' "$table" "$input" | "$IPT-restore" --noflush || die "could not remove the rules from $table"
}

remove_rules() {
  remove_table nat
  remove_table mangle
  while [ -n "$(ip rule show pref $RULE_PREF)" ]; do
    ip rule del pref $RULE_PREF || die "could not delete the policy rule"
  done
  ip route del local 0.0.0.0/0 dev lo table $ROUTE_TABLE 2>/dev/null || true
}

if [ $remove = 1 ]; then
  remove_rules
else
  install_rules
fi
