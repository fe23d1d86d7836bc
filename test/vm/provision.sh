#!/usr/bin/env bash
# Provision the ingredients of the QEMU test harness (test/vm/):
#   - host tools: qemu-system-x86_64, busybox (static), cpio, gcc/make, kmod (depmod)
#   - a distribution kernel (image + modules + matching headers), downloaded with
#     `apt-get download` and unpacked with `dpkg -x` into test/vm/cache/ (nothing is
#     installed into the host's /boot or /lib/modules)
#   - the Oops modules oops1.ko..oopsN.ko and panic_blk.ko (a pstore/blk device driver with
#     panic_write, over reserved RAM) built against those headers
#   - the base initramfs (busybox, modules + modules.dep, test modules, /bin/vm-lib.sh)
# Idempotent: every step is skipped when its output is already in the cache.
# Writes test/vm/cache/current.env, read by the TypeScript harness.
#
# Environment:
#   CRASHCART_VM_CACHE   cache directory (default: test/vm/cache next to this script)
#   CRASHCART_VM_KERNEL  kernel ABI to use, e.g. 6.1.0-56-amd64 (default: what the distribution's
#                        kernel metapackage currently depends on; falls back to the cached kernel
#                        when apt cannot answer)
#   CRASHCART_VM_OOPS_COUNT  number of Oops modules to build (default 8)
#   CRASHCART_VM_NO_APT=1    never call apt (fail if something is missing)
#   CRASHCART_VM_ARCH=i386   provision Debian's 32-bit x86 kernel (linux-image-686, i386 busybox,
#                        qemu-system-i386) next to the default amd64 one; writes current-i386.env
#   CRASHCART_VM_ARCH=arm64  provision Debian's arm64 kernel (linux-image-arm64, arm64 busybox,
#                        qemu-system-aarch64, modules cross-built with aarch64-linux-gnu-gcc-12 and
#                        the host's linux-kbuild); writes current-arm64.env
#   CRASHCART_VM_ARCH=s390x  big-endian guest under qemu-system-s390x (s390-ccw-virtio): Debian's
#                        s390x kernel has no CONFIG_PSTORE, so a small kernel is cross-built from
#                        linux-source-6.1 with kernel-s390x.config (~10 min once, cached); s390x
#                        busybox; writes current-s390x.env
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CRASHCART_VM_CACHE:-$HERE/cache}"
OOPS_COUNT="${CRASHCART_VM_OOPS_COUNT:-8}"
T0=$(date +%s.%N)
ARCH="${CRASHCART_VM_ARCH:-amd64}"
# FLAVOUR: Debian's kernel flavour (linux-image-FLAVOUR); CROSS: the cross toolchain prefix for
# the Oops modules (empty: the host's gcc builds them, -m32 for i386).
case "$ARCH" in
  amd64) ENV_FILE=current.env FLAVOUR=amd64 CROSS= QEMU_BIN=qemu-system-x86_64 QEMU_PKG=qemu-system-x86 ;;
  i386) ENV_FILE=current-i386.env FLAVOUR=686 CROSS= QEMU_BIN=qemu-system-i386 QEMU_PKG=qemu-system-x86 ;;
  arm64) ENV_FILE=current-arm64.env FLAVOUR=arm64 CROSS=aarch64-linux-gnu- QEMU_BIN=qemu-system-aarch64 QEMU_PKG=qemu-system-arm ;;
  # Debian's s390x kernel has no pstore: the kernel is built from linux-source-6.1 (kernel-s390x.config)
  s390x) ENV_FILE=current-s390x.env FLAVOUR=s390x CROSS=s390x-linux-gnu- QEMU_BIN=qemu-system-s390x QEMU_PKG=qemu-system-misc ;;
  *) echo "provision: ERROR: CRASHCART_VM_ARCH=$ARCH: amd64, i386, arm64 or s390x" >&2; exit 1 ;;
esac

log() { printf "provision: [%5ss] %s\n" "$(elapsed)" "$*" >&2; }
die() { printf 'provision: ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

mkdir -p "$CACHE/debs"
export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

APT_UPDATED=0
apt_update_once() {
  [ "${CRASHCART_VM_NO_APT:-0}" = 1 ] && die "apt needed but CRASHCART_VM_NO_APT=1"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
}

# ---------------------------------------------------------------- host tools
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
command -v "$QEMU_BIN" >/dev/null 2>&1 || need_pkgs+=("$QEMU_PKG")
if ! dpkg -s busybox-static >/dev/null 2>&1; then need_pkgs+=(busybox-static); fi
command -v cpio >/dev/null 2>&1 || need_pkgs+=(cpio)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ] || need_pkgs+=(kmod)
command -v dpkg-deb >/dev/null 2>&1 || need_pkgs+=(dpkg)
command -v xz >/dev/null 2>&1 || need_pkgs+=(xz-utils)
command -v zstd >/dev/null 2>&1 || need_pkgs+=(zstd)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  apt_update_once
  log "installing host packages: ${need_pkgs[*]}"
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >"$CACHE/apt-install.log" 2>&1; then
    cat "$CACHE/apt-install.log" >&2; die "apt-get install ${need_pkgs[*]} failed"
  fi
else
  log "host tools present ($QEMU_BIN, busybox-static, cpio, make, depmod, xz, zstd)"
fi
DEPMOD="$(command -v depmod || echo /sbin/depmod)"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "/bin/busybox missing after installing busybox-static"

# A foreign guest needs Debian's packages of its architecture (dpkg --add-architecture) and its busybox.
if [ "$ARCH" != amd64 ]; then
  if ! dpkg --print-foreign-architectures | grep -qx "$ARCH"; then
    [ "${CRASHCART_VM_NO_APT:-0}" = 1 ] && die "$ARCH packages needed but CRASHCART_VM_NO_APT=1"
    log "dpkg --add-architecture $ARCH"
    $SUDO dpkg --add-architecture "$ARCH"
    APT_UPDATED=0
    apt_update_once
  fi
  BUSYBOX="$CACHE/busybox-$ARCH/bin/busybox"
  if [ ! -x "$BUSYBOX" ]; then
    ls "$CACHE"/debs/busybox-static_*_"$ARCH".deb >/dev/null 2>&1 || (cd "$CACHE/debs" && apt-get download -qq "busybox-static:$ARCH" >&2) || die "apt-get download busybox-static:$ARCH failed"
    rm -rf "$CACHE/busybox-$ARCH" && dpkg-deb -x "$(ls -t "$CACHE"/debs/busybox-static_*_"$ARCH".deb | head -n1)" "$CACHE/busybox-$ARCH"
  fi
  [ -x "$BUSYBOX" ] || die "no $ARCH busybox in $CACHE/busybox-$ARCH"
fi

# ---------------------------------------------------------------- kernel choice
if [ "$ARCH" = s390x ]; then
  # Debian's s390x kernel has no CONFIG_PSTORE: build the smallest kernel that has it from
  # Debian's linux-source-6.1 with kernel-s390x.config (allnoconfig + that fragment), then lay
  # it out like an unpacked Debian kernel (boot/vmlinuz-ABI, lib/modules/ABI/{kernel,build}).
  KMAKE=(make ARCH=s390 "CROSS_COMPILE=$CROSS" "CC=${CROSS}gcc-12")
  if ! { command -v "${CROSS}gcc-12" && command -v flex && command -v bison && command -v bc; } >/dev/null 2>&1; then
    apt_update_once
    log "installing gcc-12-s390x-linux-gnu flex bison bc libelf-dev"
    $SUDO apt-get install -y -qq --no-install-recommends gcc-12-s390x-linux-gnu flex bison bc libelf-dev >&2 || die "cannot install the s390x cross compiler"
  fi
  SRC_DEB="$(ls -t "$CACHE"/debs/linux-source-6.1_*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$SRC_DEB" ]; then
    [ "${CRASHCART_VM_NO_APT:-0}" = 1 ] && die "linux-source-6.1 not cached"
    log "downloading linux-source-6.1"
    (cd "$CACHE/debs" && apt-get download -qq linux-source-6.1 >&2) || { apt_update_once; (cd "$CACHE/debs" && apt-get download -qq linux-source-6.1 >&2); } || die "apt-get download linux-source-6.1 failed"
    SRC_DEB="$(ls -t "$CACHE"/debs/linux-source-6.1_*.deb | head -n1)"
  fi
  KSRC="$CACHE/s390x/linux-source-6.1"
  KOBJ="$CACHE/s390x/build"
  KHASH="$( { basename "$SRC_DEB"; cat "$HERE/kernel-s390x.config"; } | sha256sum | cut -c1-16)"
  if [ "$(cat "$KOBJ/.complete" 2>/dev/null)" != "$KHASH" ]; then
    if [ "$(cat "$KSRC/.deb" 2>/dev/null)" != "$(basename "$SRC_DEB")" ]; then
      log "unpacking $(basename "$SRC_DEB")"
      rm -rf "$KSRC" "$KOBJ" "$CACHE/s390x/src.tmp" && mkdir -p "$CACHE/s390x/src.tmp"
      dpkg-deb --fsys-tarfile "$SRC_DEB" | tar -xO ./usr/src/linux-source-6.1.tar.xz | tar -xJ -C "$CACHE/s390x/src.tmp"
      mv "$CACHE/s390x/src.tmp/linux-source-6.1" "$KSRC" && rmdir "$CACHE/s390x/src.tmp"
      basename "$SRC_DEB" > "$KSRC/.deb"
    fi
    # a changed fragment rebuilds incrementally (kbuild tracks every CONFIG_ a file depends on)
    mkdir -p "$KOBJ"
    log "building an s390x kernel (allnoconfig + kernel-s390x.config) in $KOBJ"
    "${KMAKE[@]}" -s -C "$KSRC" O="$KOBJ" allnoconfig KCONFIG_ALLCONFIG="$HERE/kernel-s390x.config" >&2 || die "kernel configuration failed"
    for opt in PSTORE_BLK=m PSTORE_ZONE=m PSTORE_DEFLATE_COMPRESS=y VIRTIO_BLK=y SCLP_VT220_CONSOLE=y MODULES=y; do
      grep -qx "CONFIG_$opt" "$KOBJ/.config" || die "kernel-s390x.config: CONFIG_$opt did not survive allnoconfig"
    done
    "${KMAKE[@]}" -C "$KOBJ" -j"$(nproc)" bzImage modules >"$CACHE/s390x/build.log" 2>&1 || { tail -n 40 "$CACHE/s390x/build.log" >&2; die "building the s390x kernel failed"; }
    echo "$KHASH" > "$KOBJ/.complete"
    log "built $(cat "$KOBJ/include/config/kernel.release")"
  fi
  # the release (uname -r) names /lib/modules/ABI in the guest: CONFIG_LOCALVERSION="-s390x"
  ABI="$(cat "$KOBJ/include/config/kernel.release")"
  log "kernel: $ABI (built from $(basename "$SRC_DEB"))"
  KROOT="$CACHE/kernel-$ABI"
  if [ "$(cat "$KROOT/.complete" 2>/dev/null)" != "$KHASH" ]; then
    rm -rf "$KROOT" && mkdir -p "$KROOT/boot"
    "${KMAKE[@]}" -s -C "$KOBJ" INSTALL_MOD_PATH="$KROOT" modules_install >&2 || die "modules_install failed"
    ln -sfnr "$KOBJ" "$KROOT/lib/modules/$ABI/build"
    cp "$KOBJ/arch/s390/boot/bzImage" "$KROOT/boot/vmlinuz-$ABI"
    cp "$KOBJ/.config" "$KROOT/boot/config-$ABI"
    "$DEPMOD" -b "$KROOT" "$ABI" || die "depmod failed"
    echo "$KHASH" > "$KROOT/.complete"
  fi
else
  # Debian: linux-image-amd64 -> linux-image-<abi>-amd64 (+ linux-headers-<abi>-amd64, -common, linux-kbuild-X.Y)
  # Ubuntu: linux-image-generic -> linux-image-<abi>-generic (+ linux-modules[-extra]-<abi>-generic, linux-headers-<abi>[-generic])
  resolve_abi() {
    local meta dep
    local metas="linux-image-amd64 linux-image-generic"
    [ "$ARCH" != amd64 ] && metas="linux-image-$FLAVOUR:$ARCH"
    for meta in $metas; do
      dep="$(apt-cache depends "$meta" 2>/dev/null | sed -n 's/^ *Depends: linux-image-\(unsigned-\)\{0,1\}\([0-9][^ :]*\)\(:[a-z0-9]*\)\{0,1\}$/\2/p' | head -n1)"
      if [ -n "$dep" ]; then echo "$dep"; return 0; fi
    done
    return 1
  }

  ABI="${CRASHCART_VM_KERNEL:-}"
  if [ -z "$ABI" ]; then
    ABI="$(resolve_abi || true)"
    if [ -z "$ABI" ] && [ "${CRASHCART_VM_NO_APT:-0}" != 1 ] && ! ls "$CACHE"/kernel-*/.complete >/dev/null 2>&1; then
      apt_update_once
      ABI="$(resolve_abi || true)"
    fi
    if [ -z "$ABI" ]; then
      # apt cannot tell (offline): reuse the newest kernel already in the cache
      ABI="$(ls -d "$CACHE"/kernel-*/ 2>/dev/null | sed 's#.*/kernel-\(.*\)/$#\1#' | if [ "$ARCH" != amd64 ]; then grep -- "-$FLAVOUR\$"; else grep -v -e '-686$' -e '-arm64$' -e '-s390x$'; fi | sort -V | tail -n1 || true)"
      [ -n "$ABI" ] || die "cannot determine a kernel: apt-cache knows neither linux-image-amd64 nor linux-image-generic"
      log "apt cannot resolve the kernel metapackage; using cached kernel $ABI"
    fi
  fi
  log "kernel: $ABI"

  KROOT="$CACHE/kernel-$ABI"
  if [ -f "$KROOT/.complete" ]; then
    log "kernel $ABI already unpacked in $KROOT"
  else
    case "$ABI" in
      *-amd64)
        flavour_pkgs=(linux-image-$ABI linux-headers-$ABI linux-headers-${ABI%-amd64}-common)
        ;;
      *-686 | *-arm64)
        # linux-kbuild (host tools: fixdep, modpost) stays native: it only runs on the build host.
        flavour_pkgs=(linux-image-$ABI:$ARCH linux-headers-$ABI:$ARCH linux-headers-${ABI%-"$FLAVOUR"}-common)
        ;;
      *-generic)
        flavour_pkgs=(linux-image-unsigned-$ABI linux-modules-$ABI linux-modules-extra-$ABI linux-headers-$ABI linux-headers-${ABI%-generic})
        ;;
      *) die "unsupported kernel flavour: $ABI" ;;
    esac
    # Debian headers need linux-kbuild-X.Y (the major.minor of the kernel)
    if [ "${ABI%-amd64}" != "$ABI" ] || [ "${ABI%-686}" != "$ABI" ] || [ "${ABI%-arm64}" != "$ABI" ]; then
      kb="linux-kbuild-$(echo "$ABI" | cut -d. -f1-2)"
      flavour_pkgs+=("$kb")
    fi
    missing=()
    for p in "${flavour_pkgs[@]}"; do
      ls "$CACHE/debs/${p%:*}_"*.deb >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
      [ "${CRASHCART_VM_NO_APT:-0}" = 1 ] && die "kernel packages not cached: ${missing[*]}"
      log "downloading: ${missing[*]}"
      if ! (cd "$CACHE/debs" && apt-get download -qq "${missing[@]}" >&2 2>/dev/null); then
        apt_update_once
        (cd "$CACHE/debs" && apt-get download -qq "${missing[@]}" >&2) || die "apt-get download ${missing[*]} failed"
      fi
    else
      log "kernel packages cached in $CACHE/debs"
    fi
    rm -rf "$KROOT.tmp"
    mkdir -p "$KROOT.tmp"
    for p in "${flavour_pkgs[@]}"; do
      deb="$(ls -t "$CACHE/debs/${p%:*}_"*.deb | head -n1)"
      log "unpacking $(basename "$deb")"
      dpkg-deb -x "$deb" "$KROOT.tmp"
    done
    # The packages contain absolute symlinks and include paths meant for an installed
    # system (/usr/src/..., /usr/lib/linux-kbuild-...). Re-point them into the cache.
    # Relative links and includes keep the tree usable if the cache directory moves.
    find "$KROOT.tmp" -type l | while read -r l; do
      t="$(readlink "$l")"
      case "$t" in
        /*) ln -sfnr "$KROOT.tmp${t}" "$l" ;;
      esac
    done
    for mk in "$KROOT.tmp"/usr/src/linux-headers-*/Makefile; do
      [ -f "$mk" ] || continue
      sed -i 's#^include /usr/src/#include $(dir $(lastword $(MAKEFILE_LIST)))../#' "$mk"
    done
    rm -rf "$KROOT"
    mv "$KROOT.tmp" "$KROOT"
    "$DEPMOD" -b "$KROOT" "$ABI" || die "depmod failed"
    touch "$KROOT/.complete"
    log "kernel unpacked to $KROOT"
  fi
fi

VMLINUZ="$(ls "$KROOT"/boot/vmlinuz-"$ABI"* | head -n1)"
[ -f "$VMLINUZ" ] || die "no vmlinuz in $KROOT/boot"
KBUILD_DIR="$KROOT/lib/modules/$ABI/build"
[ -f "$KBUILD_DIR/Makefile" ] || die "no kernel build dir at $KBUILD_DIR"

# The headers name the compiler the kernel was built with (Debian: CC = ... gcc-12); a foreign
# 64-bit kernel needs its cross compiler (Debian: gcc-12-aarch64-linux-gnu).
KCC="$(sed -n 's/^CC = .*\(gcc-[0-9][0-9]*\)$/\1/p' "$KBUILD_DIR/.kernelvariables" 2>/dev/null | head -n1 || true)"
[ -n "$KCC" ] || KCC=gcc
# the self-built s390x kernel has no .kernelvariables: name its compiler and architecture here
OOPS_MAKE_ARGS=(${CROSS:+CROSS_COMPILE=$CROSS})
[ "$ARCH" = s390x ] && KCC=gcc-12 && OOPS_MAKE_ARGS+=(ARCH=s390 "CC=${CROSS}gcc-12")
KCC_PKG="$KCC libc6-dev"
[ -n "$CROSS" ] && KCC_PKG="$KCC-${CROSS%-}"
if ! command -v "$CROSS$KCC" >/dev/null 2>&1; then
  apt_update_once
  log "installing compiler $CROSS$KCC ($KCC_PKG)"
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $KCC_PKG >&2 || die "cannot install $KCC_PKG"
fi

# ---------------------------------------------------------------- Oops modules
OOPS_DIR="$CACHE/oops-$ABI"
OOPS_SRC_HASH="$(cat "$HERE/oops.c.in" "$HERE/panic_blk.c" | sha256sum | cut -c1-16)-$OOPS_COUNT"
if [ -f "$OOPS_DIR/.complete" ] && [ "$(cat "$OOPS_DIR/.complete")" = "$OOPS_SRC_HASH" ]; then
  log "oops modules already built in $OOPS_DIR"
else
  rm -rf "$OOPS_DIR"
  mkdir -p "$OOPS_DIR"
  objs=""
  for i in $(seq 1 "$OOPS_COUNT"); do
    sed "s/@N@/$i/g" "$HERE/oops.c.in" > "$OOPS_DIR/oops$i.c"
    objs="$objs oops$i.o"
  done
  cp "$HERE/panic_blk.c" "$OOPS_DIR/"
  # panic_blk maps RAM with memremap(), which needs CONFIG_HAS_IOMEM (not in the s390x kernel: no PCI)
  printf 'obj-m :=%s\nifdef CONFIG_HAS_IOMEM\nobj-m += panic_blk.o\nendif\n' "$objs" > "$OOPS_DIR/Kbuild"
  log "building $OOPS_COUNT Oops modules and panic_blk against $ABI"
  make -s -C "$KBUILD_DIR" M="$OOPS_DIR" "${OOPS_MAKE_ARGS[@]}" modules >"$OOPS_DIR/build.log" 2>&1 || { cat "$OOPS_DIR/build.log" >&2; die "building the Oops modules failed"; }
  for i in $(seq 1 "$OOPS_COUNT"); do [ -f "$OOPS_DIR/oops$i.ko" ] || die "oops$i.ko not built"; done
  if grep -q '^CONFIG_HAS_IOMEM=y' "$KBUILD_DIR/.config" 2>/dev/null || [ ! -f "$KBUILD_DIR/.config" ]; then
    [ -f "$OOPS_DIR/panic_blk.ko" ] || die "panic_blk.ko not built"
  fi
  echo "$OOPS_SRC_HASH" > "$OOPS_DIR/.complete"
  log "built oops1.ko..oops$OOPS_COUNT.ko$([ -f "$OOPS_DIR/panic_blk.ko" ] && echo ", panic_blk.ko")"
fi

# ---------------------------------------------------------------- initramfs
# Modules wanted in the guest (dependencies are added from modules.dep; modules built into
# this kernel are skipped).
WANT_MODULES="virtio_pci virtio_blk virtio_scsi 9p 9pnet_virtio pstore_zone pstore_blk deflate zlib_deflate zlib_inflate
  configfs loop scsi_mod sd_mod xhci_pci xhci_hcd usb_storage uas dummy_hcd libcomposite usb_f_mass_storage usb_f_fs
  ext4 crc32c_generic vfat nls_cp437 nls_utf8"
# the s390x kernel is built for pstore/blk on virtio-blk-ccw only (no PCI, USB, 9p or file systems)
[ "$ARCH" = s390x ] && WANT_MODULES="virtio_blk pstore_zone pstore_blk"

INITRD_INPUTS_HASH="$( { echo "$ABI $WANT_MODULES"; sha256sum "$BUSYBOX" "$HERE/provision.sh" "$HERE/init.sh" "$HERE/vm-lib.sh" "$OOPS_DIR"/*.ko; } | sha256sum | cut -c1-16)"
INITRD="$CACHE/initramfs-$ABI-$INITRD_INPUTS_HASH.cpio"
if [ -f "$INITRD" ]; then
  log "initramfs up to date: $INITRD"
else
  STAGE="$CACHE/initramfs-stage"
  rm -rf "$STAGE"
  mkdir -p "$STAGE"/{bin,sbin,dev,proc,sys,tmp,run,mnt,out,host,lib/oops,lib/modules/"$ABI"}
  cp "$BUSYBOX" "$STAGE/bin/busybox"
  cp "$HERE/init.sh" "$STAGE/init"
  cp "$HERE/vm-lib.sh" "$STAGE/bin/vm-lib.sh"
  chmod 755 "$STAGE/init" "$STAGE/bin/vm-lib.sh"
  cp "$OOPS_DIR"/*.ko "$STAGE/lib/oops/"
  MODDIR="$KROOT/lib/modules/$ABI"
  declare -A seen=()
  add_module() {
    local name="$1" rel dep
    # modules.dep keys are paths; module names use '_' but files may use '-'
    rel="$(awk -F: -v n="$name" '{ f=$1; sub(/.*\//,"",f); sub(/\.ko(\.[a-z0-9]+)?$/,"",f); gsub(/-/,"_",f); if (f==n) { print $1; exit } }' "$MODDIR/modules.dep")"
    if [ -z "$rel" ]; then
      if grep -q "/$name\.ko" "$MODDIR/modules.builtin" 2>/dev/null || grep -q "/${name//_/-}\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then
        return 0
      fi
      log "warning: module $name neither loadable nor built into $ABI"
      return 0
    fi
    [ -n "${seen[$rel]:-}" ] && return 0
    seen[$rel]=1
    mkdir -p "$STAGE/lib/modules/$ABI/$(dirname "$rel")"
    # busybox insmod/modprobe load plain .ko files only: decompress compressed modules
    case "$rel" in
      *.ko.zst) zstd -qdc "$MODDIR/$rel" > "$STAGE/lib/modules/$ABI/${rel%.zst}" ;;
      *.ko.xz) xz -dc "$MODDIR/$rel" > "$STAGE/lib/modules/$ABI/${rel%.xz}" ;;
      *.ko.gz) gzip -dc "$MODDIR/$rel" > "$STAGE/lib/modules/$ABI/${rel%.gz}" ;;
      *) cp "$MODDIR/$rel" "$STAGE/lib/modules/$ABI/$rel" ;;
    esac
    for dep in $(awk -F: -v r="$rel" '$1==r { print $2; exit }' "$MODDIR/modules.dep"); do
      dep="$(basename "$dep")"; dep="${dep%%.ko*}"; add_module "${dep//-/_}"
    done
  }
  for m in $WANT_MODULES; do add_module "$m"; done
  cp "$MODDIR"/modules.builtin "$MODDIR"/modules.order "$STAGE/lib/modules/$ABI/" 2>/dev/null || true
  [ -f "$MODDIR/modules.builtin.modinfo" ] && cp "$MODDIR/modules.builtin.modinfo" "$STAGE/lib/modules/$ABI/"
  "$DEPMOD" -b "$STAGE" "$ABI" || die "depmod on the initramfs failed"
  log "initramfs modules: $(find "$STAGE/lib/modules" -name '*.ko*' | sed 's#.*/##' | tr '\n' ' ')"
  rm -f "$CACHE"/initramfs-"$ABI"-*.cpio
  (cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 > "$INITRD.tmp")
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$STAGE"
  log "built initramfs $INITRD ($(du -h "$INITRD" | cut -f1))"
fi

# ---------------------------------------------------------------- uncompressed kernel
# Decompressing the bzImage under TCG costs several seconds per boot; QEMU boots the ELF
# vmlinux directly through its PVH entry point (CONFIG_PVH) instead.
VMLINUX="$CACHE/vmlinux-$ABI"
if [ -s "$VMLINUX" ]; then
  log "uncompressed kernel present: $VMLINUX"
elif grep -q '^CONFIG_PVH=y' "$KROOT/boot/config-$ABI" 2>/dev/null; then
  extract_with() { # magic-regex decompressor...
    local magic="$1"; shift
    local off
    for off in $(LC_ALL=C grep -obUaP "$magic" "$VMLINUZ" | cut -d: -f1); do
      tail -c +"$((off + 1))" "$VMLINUZ" | "$@" > "$VMLINUX.tmp" 2>/dev/null || true
      if [ "$(head -c 4 "$VMLINUX.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
        mv "$VMLINUX.tmp" "$VMLINUX"; return 0
      fi
    done
    rm -f "$VMLINUX.tmp"; return 1
  }
  extract_with '\xfd\x37\x7a\x58\x5a\x00' xz -dc \
    || extract_with '\x1f\x8b\x08' gzip -dc \
    || extract_with '\x28\xb5\x2f\xfd' zstd -dc \
    || log "warning: could not extract vmlinux from $VMLINUZ; booting the bzImage (slower)"
  [ -s "$VMLINUX" ] && log "extracted uncompressed kernel $VMLINUX"
else
  log "kernel lacks CONFIG_PVH; booting $(basename "$VMLINUZ") as it is"
fi
[ -s "$VMLINUX" ] && BOOT_KERNEL="$VMLINUX" || BOOT_KERNEL="$VMLINUZ"

QEMU="$(command -v "$QEMU_BIN")"
cat > "$CACHE/$ENV_FILE.tmp" <<ENV
KERNEL_RELEASE=$ABI
VMLINUZ=$VMLINUZ
BOOT_KERNEL=$BOOT_KERNEL
INITRD=$INITRD
OOPS_DIR=$OOPS_DIR
OOPS_COUNT=$OOPS_COUNT
KERNEL_ROOT=$KROOT
QEMU=$QEMU
ENV
mv "$CACHE/$ENV_FILE.tmp" "$CACHE/$ENV_FILE"
log "ready in $(elapsed) s: $CACHE/$ENV_FILE"
cat "$CACHE/$ENV_FILE"
