#!/usr/bin/env bash
# A 3-node Slurm cluster on one machine, for trying and testing subrt's
# Slurm runtime:  assets/slurm/cluster.sh up | down | status
#
# n1 is this host (10.77.0.1 on the bridge subrt-slurm0); n2 and n3 are
# slurmd's in network namespaces (10.77.0.2, 10.77.0.3), entered with
# `nsenter --net` (`ip netns exec` remounts /sys, which slurmd's cgroups need).
# proctrack/cgroup holds each step's processes; InactiveLimit ends a job whose
# salloc died; DefMemPerCPU keeps one job from taking a node's memory;
# oci.conf runs `srun --container` steps with runc.
# Needs root. Installs slurmctld, slurmd, slurm-client and munge when missing.
# The config is /run/subrt-slurm/slurm.conf, also linked as
# /etc/slurm/slurm.conf when that file does not exist (else export SLURM_CONF).
# Its ports are not Slurm's defaults, so another cluster on the machine goes
# on; the tests use this cluster only (test.sh sets SLURM_CONF to it).
set -euo pipefail

RUN=/run/subrt-slurm
CONF=$RUN/slurm.conf
BRIDGE=subrt-slurm0
NODES=(n2 n3)
declare -A ADDR=([n1]=10.77.0.1 [n2]=10.77.0.2 [n3]=10.77.0.3)
# A short InactiveLimit: a job whose owner died is gone within it.
INACTIVE_LIMIT=${SUBRT_SLURM_INACTIVE_LIMIT:-20}
# Not Slurm's default ports (6817, 6818): another cluster on this machine
# keeps its own, and this one is never mistaken for it.
CTLD_PORT=16817
SLURMD_PORT=16818

say() { echo "cluster.sh: $*" >&2; }

install() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v srun >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    command -v runc >/dev/null || missing+=(runc)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

config() {
    mkdir -p "$RUN" /var/spool/subrt-slurm/{ctld,d-n1,d-n2,d-n3} /var/log/subrt-slurm
    local before=
    [[ -e "$CONF" ]] && before=$(cat "$CONF")
    local cpus mem
    # Each node offers 8 CPUs (more than this machine has: a test cluster of
    # small sessions, config_overrides lets slurmd believe it) and a quarter
    # of the machine's memory.
    cpus=8
    mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) / 4))
    cat >"$CONF" <<CONF
# subrt test cluster (assets/slurm/cluster.sh); rewritten at each "up".
ClusterName=subrt
SlurmctldHost=$(hostname -s)(${ADDR[n1]})
MailProg=/bin/true
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
InactiveLimit=$INACTIVE_LIMIT
KillWait=2
MinJobAge=5
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=/var/spool/subrt-slurm/ctld
SlurmdSpoolDir=/var/spool/subrt-slurm/d-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=/var/log/subrt-slurm/slurmctld.log
SlurmdLogFile=/var/log/subrt-slurm/slurmd-%n.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=n1 NodeAddr=${ADDR[n1]} CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=n2 NodeAddr=${ADDR[n2]} CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=n3 NodeAddr=${ADDR[n3]} CPUs=$cpus RealMemory=$mem State=UNKNOWN
# LLN: each job on the least loaded node, so that a batch spreads.
PartitionName=debug Nodes=n1,n2,n3 Default=YES MaxTime=INFINITE State=UP LLN=YES
CONF
    # srun --container: steps in OCI bundles, run by runc.
    local runc="runc --root=$RUN/runc"
    cat >"$RUN/oci.conf" <<CONF
RunTimeQuery="$runc state %n.%u.%j.%s.%t"
RunTimeKill="$runc kill -a %n.%u.%j.%s.%t"
RunTimeDelete="$runc delete --force %n.%u.%j.%s.%t"
RunTimeRun="$runc run %n.%u.%j.%s.%t -b %b"
CONF
    cat >"$RUN/cgroup.conf" <<CONF
CgroupPlugin=autodetect
ConstrainCores=no
ConstrainRAMSpace=yes
CONF
    # Daemons started on an older config (other ports) start again.
    if [[ -n "$before" && "$before" != "$(cat "$CONF")" ]]; then
        say "config changed: restarting the daemons"
        pkill -f "slurm(ctl)?d -f $CONF" || true
        sleep 1
    fi
    if [[ ! -e /etc/slurm/slurm.conf ]]; then
        mkdir -p /etc/slurm
        ln -s "$CONF" /etc/slurm/slurm.conf
        ln -sf "$RUN/cgroup.conf" /etc/slurm/cgroup.conf
        ln -sf "$RUN/oci.conf" /etc/slurm/oci.conf
    elif [[ "$(readlink -f /etc/slurm/slurm.conf)" != "$CONF" ]]; then
        say "/etc/slurm/slurm.conf is someone else's; use: export SLURM_CONF=$CONF"
        cp "$RUN/cgroup.conf" "$(dirname "$CONF")/cgroup.conf"
    fi
}

network() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "${ADDR[n1]}/24" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    for node in "${NODES[@]}"; do
        local ns=subrt-slurm-$node
        if ! ip link show "veth-$node" >/dev/null 2>&1; then
            ip netns delete "$ns" 2>/dev/null || true
            ip netns add "$ns"
            ip link add "veth-$node" type veth peer name eth0 netns "$ns"
            ip link set "veth-$node" master "$BRIDGE" up
            nsenter --net=/run/netns/"$ns" ip addr add "${ADDR[$node]}/24" dev eth0
            nsenter --net=/run/netns/"$ns" ip link set eth0 up
            nsenter --net=/run/netns/"$ns" ip link set lo up
        fi
    done
}

munge_up() {
    if ! pgrep -x munged >/dev/null; then
        if [[ ! -s /etc/munge/munge.key ]]; then
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        fi
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        runuser -u munge -- munged
    fi
}

daemons_up() {
    export SLURM_CONF=$CONF
    pgrep -f "slurmctld -f $CONF" >/dev/null || slurmctld -f "$CONF"
    pgrep -f "slurmd -f $CONF -N n1" >/dev/null || slurmd -f "$CONF" -N n1
    for node in "${NODES[@]}"; do
        pgrep -f "slurmd -f $CONF -N $node" >/dev/null ||
            nsenter --net=/run/netns/subrt-slurm-"$node" slurmd -f "$CONF" -N "$node"
    done
    local deadline=$((SECONDS + 60))
    until [[ "$(sinfo -h -o '%T' 2>/dev/null | grep -cE '^idle|^mixed|^allocated')" -ge 1 ]] &&
        [[ "$(sinfo -h -N -o '%N %T' 2>/dev/null | grep -cE 'idle|mixed|allocated')" -eq 3 ]]; do
        if ((SECONDS > deadline)); then
            say "the nodes did not come up within 60 s:"
            sinfo -N >&2 || true
            tail -n 20 /var/log/subrt-slurm/*.log >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

up() {
    install
    config
    network
    munge_up
    daemons_up
    say "up: $(sinfo -h -N -o '%N' | tr '\n' ' ')(SLURM_CONF=$CONF)"
}

# The cgroup folders of this cluster's nodes (slurmd -N n2 makes slurm_n2
# in each hierarchy): what the nodes run, stepds and commands, is in them.
node_cgroups() {
    local node
    for node in n1 "${NODES[@]}"; do
        find /sys/fs/cgroup -maxdepth 2 -type d -name "slurm_$node" 2>/dev/null
    done
}

# SIGKILL to every process of the nodes' cgroups, until none is left (a
# fork between the listing and the kill adds one), then the folders,
# deepest first.
kill_node_processes() {
    local dirs pids round
    mapfile -t dirs < <(node_cgroups)
    ((${#dirs[@]})) || return 0
    for round in $(seq 1 50); do
        pids=$(find "${dirs[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
        [[ -n "$pids" ]] || break
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        sleep 0.1
    done
    find "${dirs[@]}" -depth -type d -exec rmdir {} + 2>/dev/null || true
}

down() {
    pkill -f "slurmd -f $CONF" || true
    pkill -f "slurmctld -f $CONF" || true
    local deadline=$((SECONDS + 10))
    while pgrep -f "slurm(ctl)?d -f $CONF" >/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    pkill -9 -f "slurm(ctl)?d -f $CONF" || true
    # Steps outlive their slurmd: what they run goes too, with their cgroups.
    kill_node_processes
    for node in "${NODES[@]}"; do
        ip link delete "veth-$node" 2>/dev/null || true
        ip netns delete subrt-slurm-"$node" 2>/dev/null || true
    done
    ip link delete "$BRIDGE" 2>/dev/null || true
    rm -rf /var/spool/subrt-slurm
    say "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) SLURM_CONF=$CONF sinfo -N ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
