"""Structured logs: JSON lines for journald, readable lines on a terminal, secrets masked.

Card numbers and phones never reach a log: every string value in an event passes through
:func:`mask_secrets`, which hides all but the last four digits of any run of 10 or more digits
(with the spaces, dashes and parentheses phones are written with), standing alone, not inside
a word such as a hexadecimal id. The identifiers a register
or the daemon assigns (:data:`UNMASKED_KEYS`) are exempt: a receipt id such as
``0001234567890`` is what an engineer searches the log for.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

#: a run standing alone: digits inside a word (a hex id such as a central's) are not a card
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])\+?\d[\d ()-]{8,}\d(?![0-9A-Za-z])")
#: event keys holding receipt, refund and request identifiers, logged as they are
UNMASKED_KEYS = frozenset({"receipt_id", "refund_id", "request_id", "id", "ref", "seq"})


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if digits < 10:
        return text
    keep = 4
    out: list[str] = []
    seen = 0
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_secrets(text: str) -> str:
    """``"card 7700001234567"`` → ``"card *********4567"``."""
    return _DIGIT_RUN.sub(_mask_match, text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key not in UNMASKED_KEYS:
            event[key] = _mask_value(value)
    return event


def configure_logging(
    *, json_lines: bool | None = None, stream: TextIO | None = None, level: str = "info"
) -> None:
    """Set up structlog once for the process. JSON when not on a terminal, unless told."""
    out = stream or sys.stdout
    as_json = (not out.isatty()) if json_lines is None else json_lines
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
