"""CrashcartDriver in a labgrid environment (``--lg-env env-image.yaml`` or ``env-usb.yaml``): flash with
verification, read back, extract the pstore records a Linux kernel wrote, and each fault class as its
labgrid exception. CRASHCART_REPO names the crashcart repository (fixtures)."""
import gzip
import hashlib
import os
import time

import pytest

from crashcart_labgrid import (
    CrashcartDriver,
    CrashcartImageError,
    CrashcartInfrastructureError,
    CrashcartNoResult,
    CrashcartUsageError,
)

REPO = os.environ["CRASHCART_REPO"]
FIXTURE = os.path.join(REPO, "test/fixtures/kernel/stock61-gpt")


@pytest.fixture(scope="module")
def drv(target):
    d = target.get_driver(CrashcartDriver)
    target.activate(d)
    return d


@pytest.fixture(scope="module")
def fixture_disk():
    with open(os.path.join(FIXTURE, "disk.img.gz"), "rb") as f:
        return gzip.decompress(f.read())


def usb(drv):
    return drv.reader.device is None


def test_info_names_the_card(drv, fixture_disk):
    info = drv.info()
    assert info["size"] >= len(fixture_disk)
    if usb(drv):
        assert info["device"] == f"usb:{drv.reader.port}@lun=0"
        assert info["usb"]["port"] == drv.reader.port


def test_wait_card(drv):
    if usb(drv):
        r = drv.wait_card(timeout=0)
        assert r["event"] == "insert" and r["already"] is True
        with pytest.raises(CrashcartInfrastructureError) as e:
            drv.wait_card(timeout=0, remove=True)
        assert (e.value.exit_code, e.value.exit_class) == (7, "infrastructure")
    else:
        with pytest.raises(CrashcartUsageError) as e:
            drv.wait_card(timeout=0)
        assert e.value.exit_code == 2


def test_a_truncated_image_is_an_image_fault(drv, tmp_path):
    with open(os.path.join(FIXTURE, "disk.img.gz"), "rb") as f:
        gz = f.read()
    cut = tmp_path / "cut.img.gz"
    cut.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(CrashcartImageError) as e:
        drv.write_image(str(cut), bmap=False)
    assert (e.value.exit_code, e.value.exit_class) == (10, "image")
    assert "truncated" in e.value.msg or "corrupt" in e.value.msg


def test_no_pstore_region_is_a_result(drv, tmp_path):
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    s = drv.write_image(str(blank))
    assert s["targets"][0]["verified"] is True
    with pytest.raises(CrashcartNoResult) as e:
        drv.extract_pstore(str(tmp_path / "none"))
    assert (e.value.exit_code, e.value.exit_class) == (4, "result")


def test_flash_verify_read_back_and_extract_the_kernel_records(drv, fixture_disk, tmp_path):
    s = drv.write_image(os.path.join(FIXTURE, "disk.img.gz"))
    assert s["status"] == "ok" and s["ok"] is True
    assert s["targets"][0]["verified"] is True
    assert s["image"]["sha256"] == hashlib.sha256(fixture_disk).hexdigest()

    r = drv.read_image(str(tmp_path / "back.img"), size=len(fixture_disk))
    assert r["sha256"] == hashlib.sha256(fixture_disk).hexdigest()
    assert r["badBytes"] == 0

    with open(os.path.join(FIXTURE, "cmdline.txt")) as f:
        cmdline = f.read().strip()
    dest = tmp_path / "pstore"
    index = drv.extract_pstore(str(dest), cmdline=cmdline)
    readout = os.path.join(FIXTURE, "kernel-readout")
    assert index["region"]["offset"] == 2 << 20  # GPT partition 2, as blkdev=/dev/vda2 says
    assert sorted(x["file"] for x in index["records"]) == sorted(os.listdir(readout))
    for name in os.listdir(readout):
        with open(os.path.join(readout, name), "rb") as want:
            assert (dest / name).read_bytes() == want.read(), f"{name} differs from what the kernel showed"


def test_reader_handed_back_to_the_kernel(drv):
    """Once a driver call returned, the kernel's usb-storage owns the reader again (safe to switch a mux)."""
    if not usb(drv):
        pytest.skip("an image file has no kernel driver")
    link = f"/sys/bus/usb/devices/{drv.reader.port}:1.0/driver"
    deadline = time.monotonic() + 20
    while not (os.path.exists(link) and os.path.basename(os.readlink(link)) == "usb-storage"):
        assert time.monotonic() < deadline, "usb-storage was not bound to the reader again"
        time.sleep(0.1)


def test_mux_needs_a_mux_resource(drv):
    with pytest.raises(CrashcartUsageError):
        drv.set_mode("dut")
