"""The driver registry: framings and output devices found by name, imported lazily.

Built-in names map to ``"module:attr"`` strings; nothing is imported until a name is used.
Other packages add drivers through the entry-point group ``tillgate.drivers``: an entry named
``framing.<name>`` adds a framing, ``output.<name>`` (or a bare ``<name>``) an output device;
its value is ``"module:attr"``, a callable taking the driver's keyword options. A built-in name
cannot be replaced by a plug-in. An unknown name is a :class:`~tillgate.errors.ConfigError`
listing the known ones, and so is a name whose module cannot be imported (:func:`load`, which
configuration parsing calls for every driver it names, so ``check-config`` catches it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Literal, cast

from drivers.base import Framing
from tillgate.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "display_names",
    "framing_names",
    "load",
    "make_framing",
    "make_output",
    "output_names",
    "printer_names",
]

ENTRY_POINT_GROUP = "tillgate.drivers"

_FRAMINGS: dict[str, str] = {
    "lines": "drivers.lines:LinesFraming",
    "link": "drivers.link:Link",
}
_OUTPUTS: dict[str, str] = {
    "escpos": "drivers.escpos_printer:ReceiptPrinter",
    "cd5220": "drivers.display:cd5220_display",
    "epson": "drivers.display:epson_display",
    "epson_display": "drivers.display:epson_display",
}
#: The built-in outputs by what they are, so that a printer is never configured as a display;
#: a plug-in output may be either.
_PRINTERS = frozenset({"escpos"})
_DISPLAYS = frozenset({"cd5220", "epson", "epson_display"})


def _plugins() -> tuple[dict[str, str], dict[str, str]]:
    framings: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        kind, _, name = entry.name.partition(".")
        if kind == "framing" and name:
            framings.setdefault(name, entry.value)
        elif kind == "output" and name:
            outputs.setdefault(name, entry.value)
        else:
            outputs.setdefault(entry.name, entry.value)
    return framings, outputs


def _table(kind: str) -> dict[str, str]:
    framings, outputs = _plugins()
    if kind == "framing":
        return {**framings, **_FRAMINGS}
    return {**outputs, **_OUTPUTS}


def _resolve(kind: str, name: str) -> Callable[..., Any]:
    table = _table(kind)
    target = table.get(name)
    if target is None:
        raise ConfigError(
            f"unknown {kind} {name!r}", key=kind, hint=f"known: {', '.join(sorted(table))}"
        )
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # a plug-in may fail at import in any way: it is a config error
        raise ConfigError(
            f"{kind} {name!r} points at {target!r}, which cannot be loaded: {exc}", key=kind
        ) from exc
    if not callable(factory):
        raise ConfigError(f"{kind} {name!r}: {target!r} is not callable", key=kind)
    return cast(Callable[..., Any], factory)


def load(kind: Literal["framing", "output"], name: str) -> Callable[..., Any]:
    """The factory of the ``kind`` driver named ``name``, imported now; raises ConfigError
    when the name is unknown or its module cannot be imported."""
    return _resolve(kind, name)


def framing_names() -> list[str]:
    """Every framing name (built-in and plug-in), sorted."""
    return sorted(_table("framing"))


def output_names() -> list[str]:
    """Every output device kind (built-in and plug-in), sorted."""
    return sorted(_table("output"))


def printer_names() -> list[str]:
    """Every output that may drive a receipt printer (built-in printers and plug-ins), sorted."""
    return sorted(name for name in _table("output") if name not in _DISPLAYS)


def display_names() -> list[str]:
    """Every output that may drive a pole display (built-in displays and plug-ins), sorted."""
    return sorted(name for name in _table("output") if name not in _PRINTERS)


def make_framing(name: str, **options: Any) -> Framing:
    """A new framing core by name (``lines``, ``link``); options go to its constructor."""
    factory = _resolve("framing", name)
    try:
        framing = factory(**options)
    except TypeError as exc:
        raise ConfigError(f"framing {name!r}: {exc}", key="framing") from exc
    return cast(Framing, framing)


def make_output(kind: str, **options: Any) -> Any:
    """An output device by kind (``escpos``, ``cd5220``, ``epson_display``) and its options.

    ``escpos`` gives a :class:`~drivers.escpos_printer.ReceiptPrinter`; the display kinds give
    a :class:`~drivers.display.PoleDisplay`. Options are the classes' constructor arguments
    (``url`` first).
    """
    factory = _resolve("output", kind)
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"output {kind!r}: {exc}", key="output") from exc
