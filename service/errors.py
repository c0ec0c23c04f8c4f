"""One-line error text: ONNX Runtime's load errors run to many lines, and a client or log needs one."""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The exception's first non-empty line, or its class name when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
