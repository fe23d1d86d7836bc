"""CrashcartDriver: card operations through `crashcart … --json`, run where the reader is.

Each method runs one crashcart command through the resource's command prefix (nothing for a local
reader, SSH to the exporter for a NetworkCrashcartReader), with ``--json --log-format json``; it returns
the parsed output (schemas/v1 in the crashcart repository) and turns a non-zero exit into the exception
of the exit code's class (errors.py). When a method returns, crashcart has exited: what it wrote is
flushed to the card and the reader is handed back to its kernel driver (README, "Machine contract"), so
the card may be switched to the board.
"""
import json
import logging
import os
import shlex
import subprocess

import attr
from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.resource.common import NetworkResource
from labgrid.step import step
from labgrid.util.managedfile import ManagedFile

from .errors import CrashcartUsageError, error_for


@target_factory.reg_driver
@attr.s(eq=False)
class CrashcartDriver(Driver):
    """Flash, verify, read and extract pstore records from the card in a crashcart reader.

    Args:
        timeout (float): seconds one crashcart run may take before it is stopped (SIGTERM: crashcart
            stops at a safe point and exits 143, raised as CrashcartInterrupted). Default 3600.
    """

    bindings = {"reader": {"CrashcartReader", "NetworkCrashcartReader"}}
    timeout = attr.ib(default=3600.0, validator=attr.validators.instance_of((int, float)))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.logger = logging.getLogger(f"{self}:{self.target}")
        self.tool = (self.target.env.config.get_tool("crashcart") if self.target.env else None) or "crashcart"

    # -- running crashcart ---------------------------------------------------------------------

    def _command(self, args):
        cmd = [self.tool, *args, "--json", "--log-format", "json"]
        prefix = self.reader.command_prefix
        # Over SSH the words are joined into one remote shell line: quote them.
        return prefix + [shlex.quote(a) for a in cmd] if prefix else cmd

    def run(self, args, *, ndjson=False, timeout=None):
        """Runs ``crashcart ARGS --json`` and returns its output: the object it prints, or with ``ndjson``
        the list of its events. A non-zero exit raises the exception of its class."""
        cmd = self._command([str(a) for a in args])
        self.logger.debug("running %s", " ".join(cmd))
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            raise error_for(143, None, command=cmd, stdout=out.splitlines(), stderr=[f"timed out after {e.timeout} s"]) from e
        stdout, stderr = p.stdout.splitlines(), p.stderr.splitlines()
        for line in stderr:
            self._log(line)
        if p.returncode != 0:
            last = _json_or_none(stdout[-1]) if stdout else None
            raise error_for(p.returncode, last if isinstance(last, dict) and last.get("type") == "error" else None, command=cmd, stdout=stdout, stderr=stderr)
        if ndjson:
            return [json.loads(line) for line in stdout if line.strip()]
        return json.loads(p.stdout) if p.stdout.strip() else None

    def _log(self, line):
        obj = _json_or_none(line)
        if not isinstance(obj, dict) or "message" not in obj:
            self.logger.info("%s", line)
            return
        level = {"error": logging.ERROR, "warning": logging.WARNING}.get(obj.get("level"), logging.INFO)
        self.logger.log(level, "%s", obj["message"])

    def _on_reader(self, path):
        """A local file's path where crashcart runs: copied to the exporter for a network reader."""
        if self.target.env:
            try:
                path = self.target.env.config.get_image_path(path)
            except KeyError:
                pass
        if not isinstance(self.reader, NetworkResource):
            return os.path.abspath(path)
        mf = ManagedFile(path, self.reader)
        mf.sync_to_resource()
        return mf.get_remote_path()

    def on_activate(self):
        pass

    def on_deactivate(self):
        pass

    # -- operations ----------------------------------------------------------------------------

    @Driver.check_active
    @step(args=["image"])
    def write_image(self, image, bmap=None, verify=True, resume=False, retries=None):
        """Writes ``image`` (raw, .gz, .xz, .zst, .bz2; a key of the environment's ``images`` or a path)
        to the card and, unless ``verify=False``, reads it back and compares. ``bmap``: a bmap file, None
        for IMAGE.bmap when it exists next to the image, False to write every block. Returns the
        summary event (``targets[0].verified``, ``image.sha256``, …)."""
        args = ["flash", self._on_reader(image), self.reader.selector, "--yes"]
        if bmap is False:
            args.append("--no-bmap")
        elif bmap is not None:
            args += ["--bmap", self._on_reader(bmap)]
        if not verify:
            args.append("--no-verify")
        if resume:
            args.append("--resume")
        if retries is not None:
            args += ["--retries", str(retries)]
        events = self.run(args, ndjson=True)
        return next(e for e in reversed(events) if e.get("type") == "summary")

    @Driver.check_active
    @step(args=["dest"])
    def read_image(self, dest, offset=None, size=None):
        """Reads the card (or ``size`` bytes from ``offset``) into ``dest`` on the host crashcart runs on,
        with a ddrescue map next to it (``DEST.map``; reading again continues). Returns the summary
        (``sha256``, ``badBytes``, …)."""
        args = ["read", self.reader.selector, "-o", dest]
        if offset is not None:
            args += ["--offset", str(offset)]
        if size is not None:
            args += ["--size", str(size)]
        events = self.run(args, ndjson=True)
        return next(e for e in reversed(events) if e.get("type") == "summary")

    @Driver.check_active
    @step(args=["dest"])
    def extract_pstore(self, dest, cmdline=None, profile=None, symbols=None):
        """Extracts the pstore/blk records of the card into the new folder ``dest`` (on the host crashcart
        runs on) as the kernel shows them in /sys/fs/pstore, and returns the parsed index.json. The region
        and zone sizes come from the board's kernel ``cmdline`` or a board ``profile`` (name or file), or
        are found on the card."""
        if cmdline is not None and profile is not None:
            raise CrashcartUsageError("extract_pstore: give cmdline or profile, not both", exit_code=2, exit_class="usage")
        args = ["pstore", "extract", self.reader.selector, "-o", dest]
        if cmdline is not None:
            args += ["--cmdline", cmdline]
        if profile is not None:
            args += ["--profile", self._on_reader(profile) if os.path.isfile(profile) else profile]
        if symbols is not None:
            args += ["--symbols", self._on_reader(symbols)]
        return self.run(args)

    @Driver.check_active
    @step(args=["timeout", "remove"])
    def wait_card(self, timeout=None, remove=False, interval=None):
        """Waits until a card is in the reader (or, with ``remove``, out of it); ``timeout`` in seconds
        (CrashcartInfrastructureError when it passes, exit code 7). Returns the wait result."""
        args = ["wait", self.reader.selector, "--remove" if remove else "--insert"]
        if timeout is not None:
            args += ["--timeout", str(timeout)]
        if interval is not None:
            args += ["--interval", str(interval)]
        return self.run(args, timeout=None if timeout is None else timeout + 60)

    @Driver.check_active
    def info(self):
        """Capacity, write protect, reader, partition table and pstore region of the card."""
        return self.run(["info", self.reader.selector])

    @Driver.check_active
    @step(args=["mode"])
    def set_mode(self, mode):
        """SD mux: connect the card to the host (``host``) or the board (``dut``) with ``crashcart mux``."""
        if not self.reader.mux:
            raise CrashcartUsageError(f"{self.reader.selector} is not an SD mux (set mux: true on the resource)", exit_code=2, exit_class="usage")
        if mode not in ("host", "dut", "off"):
            raise CrashcartUsageError(f"mux mode {mode!r}: host, dut or off", exit_code=2, exit_class="usage")
        return self.run(["mux", self.reader.selector, mode])


def _json_or_none(line):
    try:
        return json.loads(line)
    except ValueError:
        return None
