#!/usr/bin/env python3
"""
The SDWire reference: what Badgerd's sdwire-cli does to an SDWireC, run through pyftdi (Debian
package python3-ftdi) and pyusb (python3-usb), so crashcart's `mux` can be compared with it request
for request. sdwire-cli (sdwire/backend/detect.py, device/sdwirec.py):
  - an SDWireC is any USB device whose product string is "sd-wire",
  - switch ts / dut:  Ftdi().open_from_device(dev); set_bitmode(0xF0 | target, Ftdi.BitMode.CBUS);
                      close()   with target 1 for the test server, 0 for the DUT.
sdwire-cli has no status command; `status` here is sd-mux-ctrl's --status for an SDWire (libftdi
ftdi_read_pins, SIO_READ_PINS): pyftdi's read_pins() on the same opened chip, CBUS0 high = ts.

Usage: sdwire-reference.py [--capture] ACTION...     ACTION: ts | dut | status
  without --capture: drives the SDWire on this machine's USB (the FunctionFS emulator in the VM
                     test logs what arrives); prints {"status": [...]} on stdout,
  with --capture:    pyusb talks to a simulated FT200XD instead (a pyusb backend in this file),
                     and every vendor control request pyftdi sends is printed with the results:
                     {"actions": {"ts": [requests], ...}, "status": [...]}; each request is
                     {bmRequestType, bRequest, wValue, wIndex, wLength, data (hex of data-OUT)}.
"""
import json
import sys

import usb.backend
import usb.core
from pyftdi.ftdi import Ftdi

SDWIREC_PRODUCT_STRING = 'sd-wire'


def find_sdwirec(backend=None):
    """detect.get_sdwirec_devices: every device whose product string is sd-wire."""
    found = []
    for device in usb.core.find(find_all=True, backend=backend):
        try:
            product = device.product
        except Exception:  # as sdwire-cli: a device whose strings cannot be read is skipped
            product = None
        if product == SDWIREC_PRODUCT_STRING:
            found.append(device)
    return found


def set_sdwire(device, target):
    """sdwirec.SDWireC._set_sdwire."""
    ftdi = Ftdi()
    ftdi.open_from_device(device)
    ftdi.set_bitmode(0xF0 | target, Ftdi.BitMode.CBUS)
    ftdi.close()


def read_status(device):
    ftdi = Ftdi()
    ftdi.open_from_device(device)
    pins = ftdi.read_pins()
    ftdi.close()
    return 'ts' if pins & 0x01 else 'dut'


def run(actions, backend=None, log=None):
    devices = find_sdwirec(backend)
    if len(devices) != 1:
        raise SystemExit('expected one sd-wire device, found %d' % len(devices))
    device = devices[0]
    status = []
    per_action = {}
    for action in actions:
        start = len(log) if log is not None else 0
        if action == 'ts':
            set_sdwire(device, 1)
        elif action == 'dut':
            set_sdwire(device, 0)
        elif action == 'status':
            status.append(read_status(device))
        else:
            raise SystemExit('unknown action %r' % action)
        if log is not None:
            per_action.setdefault(action, []).append(log[start:])
    return status, per_action


# ---- a simulated FT200XD for pyusb (--capture) ---------------------------------------------------

class _Desc:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class SimFt200xd(usb.backend.IBackend):
    """One FT200XD programmed as an SDWire (04e8:6001, "sd-wire"): descriptors, string descriptors,
    and the FTDI vendor requests pyftdi sends; CBUS latch kept across a bit-mode reset."""

    def __init__(self):
        self.log = []
        self.direction = 0
        self.latch = 0
        self.latency = 16
        self.strings = {1: 'SRPOL', 2: SDWIREC_PRODUCT_STRING, 3: 'sdw-capture'}

    def enumerate_devices(self):
        yield 'ft200xd'

    def get_device_descriptor(self, dev):
        return _Desc(bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0, bDeviceProtocol=0,
                     bMaxPacketSize0=8, idVendor=0x04E8, idProduct=0x6001, bcdDevice=0x1000, iManufacturer=1, iProduct=2,
                     iSerialNumber=3, bNumConfigurations=1, address=7, bus=1, port_number=1, port_numbers=(3, 1), speed=2)

    def get_configuration_descriptor(self, dev, config):
        return _Desc(bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1, bConfigurationValue=1, iConfiguration=0,
                     bmAttributes=0x80, bMaxPower=45, extra_descriptors=[])

    def get_interface_descriptor(self, dev, intf, alt, config):
        if intf != 0 or alt != 0:
            raise IndexError('no such interface')
        return _Desc(bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0, bNumEndpoints=2, bInterfaceClass=0xFF,
                     bInterfaceSubClass=0xFF, bInterfaceProtocol=0xFF, iInterface=2, extra_descriptors=[])

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        if ep > 1:
            raise IndexError('no such endpoint')
        return _Desc(bLength=7, bDescriptorType=5, bEndpointAddress=(0x81, 0x02)[ep], bmAttributes=2, wMaxPacketSize=64, bInterval=0,
                     bRefresh=0, bSynchAddress=0, extra_descriptors=[])

    def open_device(self, dev):
        return 'handle'

    def close_device(self, handle):
        pass

    def set_configuration(self, handle, value):
        pass

    def get_configuration(self, handle):
        return 1

    def claim_interface(self, handle, intf):
        pass

    def release_interface(self, handle, intf):
        pass

    def is_kernel_driver_active(self, handle, intf):
        return False

    def detach_kernel_driver(self, handle, intf):
        pass

    def attach_kernel_driver(self, handle, intf):
        raise usb.core.USBError('no kernel driver for the simulated chip')

    def ctrl_transfer(self, handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        dir_in = bool(bmRequestType & 0x80)
        if (bmRequestType & 0x60) == 0 and bRequest == 6 and (wValue >> 8) == 3:  # GET_DESCRIPTOR(string)
            index = wValue & 0xFF
            payload = bytes([4, 3, 0x09, 0x04]) if index == 0 else self._string(index)
            return _fill(data, payload)
        if (bmRequestType & 0x60) != 0x40:
            raise usb.core.USBError('simulated FT200XD: request not handled')
        length = len(data) if data is not None else 0
        self.log.append({'bmRequestType': bmRequestType, 'bRequest': bRequest, 'wValue': wValue, 'wIndex': wIndex, 'wLength': length,
                         'data': '' if dir_in or not data else bytes(data).hex()})
        if not dir_in:
            if bRequest == 0x0B and (wValue >> 8) == 0x20:
                self.direction = (wValue >> 4) & 0x0F
                self.latch = wValue & 0x0F
            elif bRequest == 0x09:
                self.latency = wValue & 0xFF
            return length
        reply = {0x0C: bytes([self.latch & self.direction & 0x0F]), 0x0A: bytes([self.latency]), 0x05: bytes([0x01, 0x60])}.get(bRequest)
        if reply is None:
            raise usb.core.USBError('simulated FT200XD: request not handled')
        return _fill(data, reply)

    def _string(self, index):
        s = self.strings[index].encode('utf-16-le')
        return bytes([2 + len(s), 3]) + s


def _fill(buf, payload):
    """Copies a reply into pyusb's IN buffer (an array('B')); returns its length."""
    n = min(len(payload), len(buf))
    for i in range(n):
        buf[i] = payload[i]
    return n


def main(argv):
    capture = '--capture' in argv
    actions = [a for a in argv if a != '--capture']
    if capture:
        chip = SimFt200xd()
        status, per_action = run(actions, backend=chip, log=chip.log)
        print(json.dumps({'actions': per_action, 'status': status}))
    else:
        status, _ = run(actions)
        print(json.dumps({'status': status}))


if __name__ == '__main__':
    main(sys.argv[1:])
