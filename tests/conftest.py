"""Suite-wide settings.

hypothesis is imported here, at collection, on purpose: CPython 3.11's AST constructor keeps a
process-global recursion counter that threads formatting tracebacks (gRPC servers in tests)
can leave skewed, and pytest's assertion rewriter would otherwise parse hypothesis lazily at the
end of a run and fail with "AST constructor recursion depth mismatch".
"""

from __future__ import annotations

import hypothesis  # noqa: F401 - see the module docstring
