#!/bin/sh
# kube-proxy shares the node's network namespace: use the iptables backend (legacy or
# nft) that already holds the node's rules, as the official image's wrapper does.
legacy=$( (iptables-legacy-save; ip6tables-legacy-save) 2>/dev/null | grep -c '^-')
nft=$( (iptables-nft-save; ip6tables-nft-save) 2>/dev/null | grep -c '^-')
mode=nft
[ "$legacy" -gt "$nft" ] && mode=legacy
update-alternatives --set iptables "/usr/sbin/iptables-$mode" >/dev/null
update-alternatives --set ip6tables "/usr/sbin/ip6tables-$mode" >/dev/null
exec /usr/local/bin/kube-proxy.real "$@"
