"""Resources naming a card reader for crashcart.

``CrashcartReader`` is a reader on the host that runs the test; ``NetworkCrashcartReader`` one on an
exporter (``host``), reached through labgrid's SSH command prefix, so crashcart runs where the reader is.
Name the reader by its USB port path (``port: "1-1.2"``, stable across re-plugging into the same port, as
``crashcart list`` shows it) or its serial number (``serial``), optionally one slot (``lun``); or give
any crashcart device (``device: /dev/sdX`` or an image file) instead. ``mux: true`` marks a reader that is
an SD mux (USB-SD-Mux style), which the driver can switch between the host and the board.
"""
import attr
from labgrid.factory import target_factory
from labgrid.resource.common import NetworkResource, Resource


def _check_naming(instance):
    named = [n for n in ("port", "serial", "device") if getattr(instance, n)]
    if len(named) != 1:
        raise ValueError(f"{type(instance).__name__}: name the reader by exactly one of port, serial or device (got {named or 'none'})")
    if instance.device and instance.lun is not None:
        raise ValueError(f"{type(instance).__name__}: lun only applies to a USB reader (port or serial)")


_optional_str = attr.validators.optional(attr.validators.instance_of(str))


def selector_of(resource):
    """The crashcart device argument for the resource: ``usb:1-1.2``, ``usb:serial=…``, ``@lun=N``, or ``device``."""
    if resource.device:
        return resource.device
    base = f"usb:{resource.port}" if resource.port else f"usb:serial={resource.serial}"
    return base if resource.lun is None else f"{base}@lun={resource.lun}"


@target_factory.reg_resource
@attr.s(eq=False)
class CrashcartReader(Resource):
    port = attr.ib(default=None, validator=_optional_str)
    serial = attr.ib(default=None, validator=_optional_str)
    lun = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(int)))
    device = attr.ib(default=None, validator=_optional_str)
    mux = attr.ib(default=False, validator=attr.validators.instance_of(bool))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        _check_naming(self)

    @property
    def selector(self):
        return selector_of(self)


@target_factory.reg_resource
@attr.s(eq=False)
class NetworkCrashcartReader(NetworkResource):
    port = attr.ib(default=None, validator=_optional_str)
    serial = attr.ib(default=None, validator=_optional_str)
    lun = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(int)))
    device = attr.ib(default=None, validator=_optional_str)
    mux = attr.ib(default=False, validator=attr.validators.instance_of(bool))

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        _check_naming(self)

    @property
    def selector(self):
        return selector_of(self)
