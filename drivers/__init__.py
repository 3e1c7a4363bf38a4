"""drivers room: framings (``lines``, ``link``), transports (TCP, serial), output devices.

The public surface is the contracts of :mod:`drivers.base` and the registry; the rest is
imported from its module (``drivers.serial``, ``drivers.escpos_printer``...) so that loading
the package pulls in neither pyserial nor python-escpos.
"""

from drivers.base import (
    Channel,
    ChannelClosed,
    ChannelEvent,
    Framing,
    FramingEvent,
    LinkNotice,
    PayloadReceived,
    PayloadTooLarge,
    Received,
    Rejected,
)
from drivers.registry import framing_names, make_framing, make_output, output_names

__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelEvent",
    "Framing",
    "FramingEvent",
    "LinkNotice",
    "PayloadReceived",
    "PayloadTooLarge",
    "Received",
    "Rejected",
    "framing_names",
    "make_framing",
    "make_output",
    "output_names",
]
