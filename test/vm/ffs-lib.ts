// Guest side of the programmable FunctionFS reader tests (usb-ffs.vmtest.ts, usb-ffs-quirks.vmtest.ts):
// the shell functions that run test/vm/ffs-reader.ts as a gadget on dummy_hcd, arm its events, bound
// crashcart's runs and take the kernel's reading of the same card. Used after USB_PRELUDE (usb-lib.ts).

/**
 * Shell functions (busybox sh), after vm-lib.sh and USB_PRELUDE; they expect `mount_hostroot` and
 * `$REPO`:
 *   ffs_modules                        configfs, usb_f_fs, dummy_hcd, usb-storage, sd_mod
 *   ffs_start NAME VID PID SERIAL SCENARIO [BCD] [PRODUCT]
 *                                      the reader program as a gadget; $P = its port once enumerated
 *   ffs_stop NAME                      the program writes its cards back, the gadget goes away
 *   ffs_arm NAME N                     SIGUSR2: the scenario's event N is armed
 *   ffs_save NAME                      SIGUSR1: the program writes its cards back to their files now
 *   trun NAME ARGS…                    crashcart ARGS with a 90 s bound (a hang is exit 124)
 *   set_quirks VID:PID:FLAGS           usb-storage.quirks for devices bound from now on
 *   kernel_read PORT NAME              the kernel's dd of the card: NAME.kernel.{rc,md5,size,err}
 *   kernel_write PORT NAME FILE        the kernel's dd of FILE onto the card: NAME.kernel.{rc,err}
 */
export const FFS_SH = `
ffs_modules() { for _m in configfs libcomposite usb_f_fs dummy_hcd usb_storage sd_mod; do modprobe $_m || vm_fail "modprobe $_m"; done
  [ -d /sys/kernel/config/usb_gadget ] || mount -t configfs none /sys/kernel/config; }
ffs_start() {
  G=/sys/kernel/config/usb_gadget/$1
  mkdir -p $G/strings/0x409 $G/functions/ffs.$1 $G/configs/c.1/strings/0x409
  echo 0x$2 > $G/idVendor; echo 0x$3 > $G/idProduct; echo 0x\${6:-0100} > $G/bcdDevice
  echo crashcart > $G/strings/0x409/manufacturer
  echo "\${7:-programmable reader}" > $G/strings/0x409/product
  echo $4 > $G/strings/0x409/serialnumber
  echo reader > $G/configs/c.1/strings/0x409/configuration
  mkdir -p /host/dev/ffs-$1
  mount -t functionfs $1 /host/dev/ffs-$1 || vm_fail "mount functionfs $1"
  cp "$5" /host/tmp/scenario-$1.json
  chroot /host /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 UV_THREADPOOL_SIZE=8 \\
    node "$REPO/dist/test/vm/ffs-reader.js" /dev/ffs-$1 /tmp/scenario-$1.json > /tmp/ffs-$1.out 2> /out/ffs-$1.log &
  FFS_PID=$!
  vm_log "ffs $1: program started"
  _i=0; until grep -q ready /tmp/ffs-$1.out; do
    _i=$((_i + 1)); { [ $_i -lt 600 ] && kill -0 $FFS_PID 2>/dev/null; } || { cat /out/ffs-$1.log; vm_fail "ffs reader $1 not ready"; }; sleep 0.1
  done
  ln -s $G/functions/ffs.$1 $G/configs/c.1/
  ls /sys/class/udc | head -n1 > $G/UDC || vm_fail "binding $1 to the UDC failed"
  _i=0; until P=$(port_of_serial $4); do _i=$((_i + 1)); [ $_i -lt 300 ] || vm_fail "$1 not enumerated"; sleep 0.1; done
  vm_log "ffs $1: enumerated at $P at $(cut -d' ' -f1 /proc/uptime) s"
}
# ffs_stop NAME: the program writes its cards back (SIGTERM), the gadget goes away
ffs_stop() {
  G=/sys/kernel/config/usb_gadget/$1
  vm_log "ffs $1: stopping"
  # the program first (it writes its cards back and closes the endpoint files), then the UDC:
  # unbinding a FunctionFS gadget whose program still holds the endpoints does not return; closing
  # ep0 unbinds it already (the write then fails with ENODEV)
  kill $FFS_PID
  _i=0; while kill -0 $FFS_PID 2>/dev/null && [ $_i -lt 50 ]; do _i=$((_i + 1)); sleep 0.1; done
  kill -0 $FFS_PID 2>/dev/null && { vm_log "ffs $1: program still running after SIGTERM, killed"; kill -9 $FFS_PID; }
  wait $FFS_PID || true
  vm_log "ffs $1: program ended at $(cut -d' ' -f1 /proc/uptime) s"
  echo "" > $G/UDC 2>/dev/null || true
  rm -f $G/configs/c.1/ffs.$1
  rmdir $G/configs/c.1/strings/0x409 $G/configs/c.1 $G/functions/ffs.$1 $G/strings/0x409 $G
  umount /host/dev/ffs-$1; rmdir /host/dev/ffs-$1
}
# ffs_save NAME: SIGUSR1 has the program write its cards back; waits until it says it did
ffs_save() {
  _n=$(grep -c saved /tmp/ffs-$1.out || true); kill -USR1 $FFS_PID; _i=0
  until [ "$(grep -c saved /tmp/ffs-$1.out || true)" -gt "$_n" ]; do _i=$((_i + 1)); [ $_i -lt 600 ] || vm_fail "ffs $1: cards not written back"; sleep 0.1; done
}
# ffs_arm NAME N: SIGUSR2 arms the scenario's next event; waits until the program says it is armed
ffs_arm() { kill -USR2 $FFS_PID; _i=0; until grep -q "armed $2" /tmp/ffs-$1.out; do _i=$((_i + 1)); [ $_i -lt 100 ] || vm_fail "ffs $1: event $2 not armed"; sleep 0.1; done; vm_log "ffs $1: event $2 armed"; }
# trun NAME ARGS...: crashcart ARGS with a bound (a hang is recorded as exit 124)
trun() { _t=$1; shift; run $_t host_run timeout 90 node "$REPO/bin/crashcart" "$@"; }
# set_quirks VID:PID:FLAGS — usb-storage's quirks parameter for devices bound from now on
set_quirks() { echo "$1" > /sys/module/usb_storage/parameters/quirks; }
# find_kernel_disk PORT: the kernel's /dev/sdX of the reader at PORT (LUN 0) in $_d, empty after 20 s
# without one (usb-lib's kernel_disk fails the run instead)
find_kernel_disk() {
  _d=; _i=0
  while [ -z "$_d" ] && [ $_i -lt 200 ]; do
    for _b in /sys/bus/usb/devices/$1:1.0/host*/target*/*:*:*:0/block/*; do [ -e "$_b" ] && _d=/dev/\${_b##*/}; done
    _i=$((_i + 1)); sleep 0.1
  done
}
# kernel_write PORT NAME FILE: the kernel writes FILE onto the card (dd, direct I/O, synced)
kernel_write() {
  find_kernel_disk $1; _rc=0
  [ -n "$_d" ] || { echo "no kernel disk" > /out/$2.kernel.err; echo 99 > /out/$2.kernel.rc; return 0; }
  timeout 120 dd if=$3 of=$_d bs=64k oflag=direct conv=fsync 2> /out/$2.kernel.err || _rc=$?
  echo $_rc > /out/$2.kernel.rc
}
# kernel_read PORT NAME: the kernel's view of the card (dd of its /dev/sdX), md5 and size saved
kernel_read() {
  find_kernel_disk $1; _rc=0
  [ -n "$_d" ] || { echo "no kernel disk" > /out/$2.kernel.err; echo 99 > /out/$2.kernel.rc; echo none > /out/$2.kernel.md5; echo 0 > /out/$2.kernel.size; return 0; }
  timeout 120 dd if=$_d of=/tmp/k.img bs=64k 2> /out/$2.kernel.err || _rc=$?
  echo $_rc > /out/$2.kernel.rc
  md5sum /tmp/k.img | cut -d' ' -f1 > /out/$2.kernel.md5
  wc -c < /tmp/k.img | tr -d ' ' > /out/$2.kernel.size
  rm -f /tmp/k.img
}
`;
