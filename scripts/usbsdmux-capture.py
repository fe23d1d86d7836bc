#!/usr/bin/env python3
"""
Runs the usbsdmux tool's own Python code (Debian package `usbsdmux`) against a simulated GPIO
expander and records every SCSI command it hands to the kernel: the SG_IO ioctl is captured, so
the CDB, the direction, the transfer length and the data-OUT bytes are exactly what usbsdmux sends.
crashcart's `mux` tests compare its own commands with this record byte for byte
(test/unit/mux/usbsdmux-compat.test.ts; the committed record is test/fixtures/usbsdmux/).

Usage: scripts/usbsdmux-capture.py [PACKAGE_PARENT_DIR]   (default /usr/lib/python3/dist-packages)
Prints JSON on stdout.
"""
import builtins
import ctypes
import io
import json
import sys
import time

SG_IO = 0x2285
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3
FAKE_SG = '/dev/sg-usbsdmux-capture'


class Expander:
    """A PCA9536/TCA6408-style register file: input, output, polarity, configuration."""

    def __init__(self):
        self.output = 0xFF
        self.polarity = 0x00
        self.config = 0xFF  # power-on: every pin an input

    def input(self):
        # driven pins read back their output level; inputs are pulled high
        return ((self.output & ~self.config) | self.config) & 0xFF

    def read(self, reg):
        return [self.input(), self.output, self.polarity, self.config][reg & 3]

    def write(self, reg, value):
        reg &= 3
        if reg == 1:
            self.output = value
        elif reg == 2:
            self.polarity = value
        elif reg == 3:
            self.config = value


class FakeSg(io.RawIOBase):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else '/usr/lib/python3/dist-packages')
    import usbsdmux.usb2642i2c as bridge
    from usbsdmux.usbsdmux import UsbSdMux

    calls = []
    state = {'expander': Expander()}
    real_open = builtins.open

    def fake_open(path, *a, **k):
        return FakeSg() if path == FAKE_SG else real_open(path, *a, **k)

    def fake_ioctl(fh, request, sgio):
        assert request == SG_IO
        cdb = ctypes.string_at(sgio.cmdp, sgio.cmd_len)
        exp = state['expander']
        entry = {'cdb': cdb.hex(), 'length': sgio.dxfer_len}
        if sgio.dxfer_direction == SG_DXFER_TO_DEV:
            data = ctypes.string_at(sgio.dxferp, sgio.dxfer_len)
            entry['direction'] = 'out'
            entry['data'] = data.hex()
            if cdb[0] == 0xCF and cdb[1] == 0x23:
                count = (cdb[4] << 8) | cdb[5]
                if count >= 2:
                    exp.write(data[0], data[1])
        elif sgio.dxfer_direction == SG_DXFER_FROM_DEV:
            entry['direction'] = 'in'
            if cdb[0] == 0xCF and cdb[1] == 0x22:
                reg = cdb[7] if cdb[6] > 0 else 0
                count = (cdb[4] << 8) | cdb[5]
                reply = bytes(exp.read(reg + i) for i in range(count))
                ctypes.memmove(sgio.dxferp, reply, len(reply))
        else:
            entry['direction'] = 'none'
        calls.append(entry)
        sgio.status = 0
        return 0

    bridge.open = fake_open
    bridge.fcntl.ioctl = fake_ioctl
    time.sleep = lambda s: None

    # One scenario = actions run one after another (a new UsbSdMux per action, as the command line
    # does) on one expander starting from its power-on state.
    scenarios = {
        'status': ['status'],
        'off': ['off'],
        'host': ['host'],
        'dut': ['dut'],
        'host-status': ['host', 'status'],
        'dut-status': ['dut', 'status'],
        'off-status': ['off', 'status'],
        'dut-host-status': ['dut', 'host', 'status'],
    }
    out = {}
    for name, actions in scenarios.items():
        state['expander'] = Expander()
        calls.clear()
        results = []
        for action in actions:
            mux = UsbSdMux(FAKE_SG)
            if action == 'status':
                results.append(mux.get_mode())
            elif action == 'off':
                mux.mode_disconnect()
            elif action == 'host':
                mux.mode_host()
            elif action == 'dut':
                mux.mode_DUT()
        out[name] = {'actions': actions, 'commands': list(calls), 'status': results}
    json.dump({'tool': 'usbsdmux', 'source': bridge.__file__, 'variant': 'classic', 'scenarios': out}, sys.stdout, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
