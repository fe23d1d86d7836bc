# Helpers for scenario scripts of the crashcart VM test harness (busybox sh).
# Sourced automatically before /scenario.sh runs (under `set -e`): a failing helper ends
# the scenario with a non-zero status, which the host side reports.
#
#   vm_log MSG...                 print "vm: MSG" (serial console and script log)
#   vm_fail MSG...                print MSG and exit 1
#   vm_disk_by_serial SERIAL      print /dev/vdX of the virtio disk with that serial
#   load_pstore_blk [k=v ...]     modprobe pstore_blk (pstore_blk.* options of the kernel
#                                 command line apply too; arguments win) and check that it
#                                 registered as pstore backend
#   unload_pstore_blk             rmmod pstore_blk pstore_zone
#   load_panic_blk PHYS SIZE      modprobe pstore_blk (no blkdev: it registers nothing itself),
#                                 then insmod panic_blk.ko: a pstore/blk device driver with
#                                 panic_write over the physical range PHYS+SIZE (reserved with
#                                 memmap=SIZE$PHYS; see runVm's memoryFile); checks that it
#                                 registered as pstore backend
#   panic_now                     echo c > /proc/sysrq-trigger: a real kernel panic (does not return)
#   mount_pstore                  mount pstorefs on /sys/fs/pstore (triggers the kernel's recovery)
#   umount_pstore                 unmount it
#   oops N                        insmod oopsN.ko (Oops in the insmod process), then wait until
#                                 the kernel has flushed the dump to the pstore device (its
#                                 content changed and is stable) and sync
#   oops_nowait N                 same, but only wait until the Oops is in the kernel log
#   save_pstore [NAME]            copy /sys/fs/pstore/* byte-exactly to output NAME/ (default
#                                 "pstore"); NAME.stat lists "file size mtime date time.ns zone" of the originals
#   save_file PATH [NAME]         copy PATH (file or block device contents) to output NAME
#                                 (default: basename of PATH)
#   save_text NAME                copy stdin to output NAME
#   mount_hostroot                mount the host's / (read-only 9p, needs virtfsHostRoot) on
#                                 /host with /dev, /proc, /sys bound in and a tmpfs on /host/tmp
#   host_run CMD...               run CMD chrooted into /host (e.g. host_run node /work/...)
#   usb_host_modules              load xhci/usb-storage/sd_mod (for QEMU usb-storage devices)
#   wait_block NAME [SECONDS]     wait until /sys/class/block/NAME exists
#   usb_disks                     print /dev/sdX of every USB-attached SCSI disk
#   gadget_mass_storage FILE [ro] expose FILE (or a block device) through the kernel's
#                                 f_mass_storage gadget on dummy_hcd; prints the /dev/sdX
#                                 the guest sees for it
#   gadget_remove                 tear the gadget down
#   vm_sync                       sync and drop caches

vm_log() { echo "vm: $*"; }
vm_fail() { echo "vm: FAIL: $*"; exit 1; }

vm_disk_by_serial() {
  for b in /sys/block/vd*; do
    [ -e "$b/serial" ] || continue
    if [ "$(cat "$b/serial")" = "$1" ]; then echo "/dev/${b##*/}"; return 0; fi
  done
  return 1
}

vm_sync() { sync; echo 3 > /proc/sys/vm/drop_caches; }

load_pstore_blk() {
  _reg=$(dmesg | grep -c 'Registered pstore_blk as persistent store backend' || true)
  modprobe pstore_blk "$@" || vm_fail "modprobe pstore_blk $* failed"
  if [ "$(dmesg | grep -c 'Registered pstore_blk as persistent store backend' || true)" -le "$_reg" ]; then
    dmesg | grep -i pstore || true
    vm_fail "pstore_blk did not register as pstore backend"
  fi
  _blk=$(cat /sys/module/pstore_blk/parameters/blkdev 2>/dev/null || true)
  case "$_blk" in
    /dev/*) echo "$_blk" > /run/pstore_blkdev ;;
    *) rm -f /run/pstore_blkdev ;;
  esac
  # virtio-blk-ccw disks (s390x) are probed in parallel with -smp > 1: /dev/vda is not always the first disk
  if [ "$(cat "/sys/block/${_blk#/dev/}/serial" 2>/dev/null)" = crashcart-out ]; then
    vm_fail "pstore_blk attached to the harness output disk $_blk (pass blkdev=\$(vm_disk_by_serial ...))"
  fi
  vm_log "pstore_blk registered on ${_blk:-?}: $(for p in /sys/module/pstore_blk/parameters/*; do printf '%s=%s ' "${p##*/}" "$(cat "$p")"; done)"
}

load_panic_blk() {
  _reg=$(dmesg | grep -c 'Registered pstore_blk as persistent store backend' || true)
  modprobe pstore_blk || vm_fail "modprobe pstore_blk failed"
  insmod /lib/oops/panic_blk.ko phys="$1" size="$2" || { dmesg | grep -i pstore || true; vm_fail "insmod panic_blk.ko phys=$1 size=$2 failed"; }
  if [ "$(dmesg | grep -c 'Registered pstore_blk as persistent store backend' || true)" -le "$_reg" ]; then
    dmesg | grep -i pstore || true
    vm_fail "panic_blk did not register as pstore backend"
  fi
  rm -f /run/pstore_blkdev
  vm_log "panic_blk registered on $1+$2: $(for p in /sys/module/pstore_blk/parameters/*; do printf '%s=%s ' "${p##*/}" "$(cat "$p")"; done)"
}

panic_now() {
  vm_log "triggering a kernel panic"
  echo c > /proc/sysrq-trigger
  vm_fail "still running after the panic"
}

unload_pstore_blk() {
  rmmod pstore_blk || vm_fail "rmmod pstore_blk failed"
  rmmod pstore_zone 2>/dev/null || true
}

mount_pstore() {
  mkdir -p /sys/fs/pstore
  mount -t pstore pstore /sys/fs/pstore || vm_fail "mounting pstorefs failed"
  vm_log "pstorefs mounted: $(ls /sys/fs/pstore | tr '\n' ' ')"
}

umount_pstore() { umount /sys/fs/pstore || vm_fail "unmounting pstorefs failed"; }

_oops_insmod() {
  _n="$1"
  [ -f "/lib/oops/oops$_n.ko" ] || vm_fail "no /lib/oops/oops$_n.ko (provision builds ${OOPS_COUNT:-a few})"
  # the Oops kills insmod; its exit status carries no information
  insmod "/lib/oops/oops$_n.ko" >/dev/null 2>&1 || true
  _i=0
  # the faulting instruction's line names the module: "RIP:"/"EIP:" on x86, "pc :" on arm64,
  # "Krnl PSW :" on s390x
  until dmesg | grep -qE "([ER]IP: |pc : |PSW : ).*\[oops$_n\]"; do
    _i=$((_i + 1)); [ $_i -lt 100 ] || vm_fail "no Oops from oops$_n in the kernel log"
    sleep 0.1
  done
}

_dev_sum() { md5sum "$1" | cut -d' ' -f1; }

oops() {
  _dev=$(cat /run/pstore_blkdev 2>/dev/null || true)
  [ -b "$_dev" ] || vm_fail "oops: pstore_blk device unknown (call load_pstore_blk first)"
  _before=$(_dev_sum "$_dev")
  _oops_insmod "$1"
  _t=0; _limit=${OOPS_FLUSH_TIMEOUT:-30}
  _now=$(_dev_sum "$_dev")
  while [ "$_now" = "$_before" ]; do
    _t=$((_t + 1)); [ $_t -le $((_limit * 4)) ] || vm_fail "Oops $1: nothing written to $_dev within ${_limit} s (pstorefs not mounted?)"
    sleep 0.25
    _now=$(_dev_sum "$_dev")
  done
  # let a flush in progress finish: wait until two reads 0.5 s apart agree
  while :; do
    sleep 0.5
    _again=$(_dev_sum "$_dev")
    [ "$_again" = "$_now" ] && break
    _now=$_again
  done
  sync
  vm_log "Oops $1 written to $_dev"
}

oops_nowait() { _oops_insmod "$1"; vm_log "Oops $1 taken"; }

save_pstore() {
  _name="${1:-pstore}"
  mkdir -p "/out/$_name"
  : > "/out/$_name.stat"
  for _f in /sys/fs/pstore/*; do
    [ -e "$_f" ] || continue
    cp -p "$_f" "/out/$_name/" || vm_fail "copying $_f failed"
    stat -c '%n %s %Y %y' "$_f" | sed 's#^/sys/fs/pstore/##' >> "/out/$_name.stat"
  done
  vm_log "saved $(ls "/out/$_name" | wc -l) pstore file(s) as $_name/"
}

save_file() {
  _dst="/out/${2:-${1##*/}}"
  mkdir -p "${_dst%/*}"
  cat "$1" > "$_dst" || vm_fail "saving $1 failed"
}

save_text() {
  _dst="/out/$1"
  mkdir -p "${_dst%/*}"
  cat > "$_dst"
}

mount_hostroot() {
  modprobe 9pnet_virtio || vm_fail "modprobe 9pnet_virtio failed"
  modprobe 9p || vm_fail "modprobe 9p failed"
  mkdir -p /host
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host \
    || vm_fail "mounting the host root (9p tag hostroot) failed; was virtfsHostRoot set?"
  mount --bind /dev /host/dev
  mount -t proc proc /host/proc
  mount -t sysfs sysfs /host/sys
  # A writable /tmp for the chroot; a checkout under the host's /tmp (CI clones may live
  # there) stays visible at its own path through a bind mount of the host's copy.
  mkdir -p /hosttmp
  mount --bind /host/tmp /hosttmp
  mount -t tmpfs tmpfs /host/tmp
  case "${CRASHCART_HOST_REPO:-}" in
    /tmp/?*)
      mkdir -p "/host$CRASHCART_HOST_REPO"
      mount --bind "/hosttmp${CRASHCART_HOST_REPO#/tmp}" "/host$CRASHCART_HOST_REPO" \
        || vm_fail "cannot show the checkout $CRASHCART_HOST_REPO inside the VM"
      ;;
  esac
  mount -t tmpfs tmpfs /host/run 2>/dev/null || true
}

host_run() {
  chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 "$@"
}

usb_host_modules() {
  for _m in xhci_pci usb_storage sd_mod; do modprobe "$_m" || vm_fail "modprobe $_m failed"; done
}

wait_block() {
  _i=0; _lim=$(( ${2:-20} * 10 ))
  until [ -e "/sys/class/block/$1" ]; do
    _i=$((_i + 1)); [ $_i -le $_lim ] || vm_fail "block device $1 did not appear"
    sleep 0.1
  done
}

usb_disks() {
  for _b in /sys/block/sd*; do
    [ -e "$_b" ] || continue
    case "$(readlink -f "$_b/device")" in */usb*) echo "/dev/${_b##*/}" ;; esac
  done
}

GADGET=/sys/kernel/config/usb_gadget/crashcart
gadget_mass_storage() {
  for _m in configfs libcomposite usb_f_mass_storage dummy_hcd usb_storage sd_mod; do
    modprobe "$_m" || vm_fail "modprobe $_m failed"
  done
  mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
  _before=$(ls /sys/block | grep '^sd' | tr '\n' ' ')
  mkdir -p "$GADGET" || vm_fail "cannot create gadget"
  echo 0x1d6b > "$GADGET/idVendor"
  echo 0x0104 > "$GADGET/idProduct"
  mkdir -p "$GADGET/strings/0x409"
  echo crashcart > "$GADGET/strings/0x409/manufacturer"
  echo "test card reader" > "$GADGET/strings/0x409/product"
  echo 0123456789 > "$GADGET/strings/0x409/serialnumber"
  mkdir -p "$GADGET/functions/mass_storage.0" "$GADGET/configs/c.1/strings/0x409"
  echo mass-storage > "$GADGET/configs/c.1/strings/0x409/configuration"
  echo 1 > "$GADGET/functions/mass_storage.0/lun.0/removable"
  [ "${2:-}" = ro ] && echo 1 > "$GADGET/functions/mass_storage.0/lun.0/ro"
  echo "$1" > "$GADGET/functions/mass_storage.0/lun.0/file" || vm_fail "gadget: cannot use $1 as backing file"
  ln -s "$GADGET/functions/mass_storage.0" "$GADGET/configs/c.1/"
  ls /sys/class/udc | head -n1 > "$GADGET/UDC" || vm_fail "gadget: binding to the UDC failed"
  _i=0
  while :; do
    for _b in /sys/block/sd*; do
      [ -e "$_b" ] || continue
      case " $_before " in *" ${_b##*/} "*) continue ;; esac
      if [ "$(cat "$_b/size")" != 0 ]; then echo "/dev/${_b##*/}"; return 0; fi
    done
    _i=$((_i + 1)); [ $_i -le 300 ] || vm_fail "gadget: no SCSI disk appeared"
    sleep 0.1
  done
}

gadget_remove() {
  [ -d "$GADGET" ] || return 0
  echo "" > "$GADGET/UDC" 2>/dev/null || true
  rm -f "$GADGET/configs/c.1/mass_storage.0"
  rmdir "$GADGET/configs/c.1/strings/0x409" "$GADGET/configs/c.1" "$GADGET/functions/mass_storage.0" \
    "$GADGET/strings/0x409" "$GADGET" 2>/dev/null || true
}
