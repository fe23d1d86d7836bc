#!/bin/busybox sh
# PID 1 of the crashcart VM test harness initramfs.
# Runs /scenario.sh (added by the harness as a second cpio archive) with /bin/vm-lib.sh
# sourced, under `set -e`, then writes /out as a tar stream to the output disk (the
# virtio disk whose serial is "crashcart-out"), syncs and powers off.
# Kernel command line knobs: crashcart.timeout=SECONDS (scenario watchdog).
/bin/busybox mkdir -p /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /root
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /out

echo "crashcart-vm: init started ($(uname -r)) after $(cut -d' ' -f1 /proc/uptime) s"

. /bin/vm-lib.sh

timeout_s=$(sed -n 's/.*crashcart\.timeout=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$timeout_s" ] || timeout_s=300

modprobe virtio_pci 2>/dev/null
modprobe virtio_blk 2>/dev/null

OUTDEV=""
i=0
while [ $i -lt 100 ]; do
  OUTDEV=$(vm_disk_by_serial crashcart-out 2>/dev/null) && break
  sleep 0.1; i=$((i + 1))
done
[ -n "$OUTDEV" ] || echo "crashcart-vm: WARNING: no output disk (serial crashcart-out)"
mkdir -p /out/.vm

finish() {
  mkdir /run/finish.lock 2>/dev/null || return 0
  status=$(cat /run/status 2>/dev/null)
  [ -n "$status" ] || status=255
  echo "$status" > /out/.vm/status
  cp /run/script.log /out/.vm/script.log 2>/dev/null
  dmesg > /out/.vm/dmesg 2>/dev/null
  cat /proc/uptime > /out/.vm/uptime
  if [ -n "$OUTDEV" ]; then
    tar -cf "$OUTDEV" -C /out . || echo "crashcart-vm: WARNING: writing outputs to $OUTDEV failed"
  fi
  sync
  echo "crashcart-vm: scenario exit status $status"
  echo "crashcart-vm: powering off after $(cut -d' ' -f1 /proc/uptime) s"
  poweroff -f
  sleep 5
  echo o > /proc/sysrq-trigger
}

( sleep "$timeout_s"
  echo "crashcart-vm: scenario timed out after ${timeout_s} s"
  echo 124 > /run/status
  finish ) &

if [ -f /scenario.sh ]; then
  echo "crashcart-vm: running scenario"
  ( cd /tmp && sh -ec '. /bin/vm-lib.sh; . /scenario.sh' ; echo $? > /run/status.tmp ) 2>&1 | tee /run/script.log
  [ -f /run/status ] || mv /run/status.tmp /run/status
else
  echo "crashcart-vm: no /scenario.sh"
  echo 127 > /run/status
fi
finish
sleep 30
