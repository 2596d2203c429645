"""segcli's exit codes, defined once (the command line's; the library returns them too)."""

from __future__ import annotations

EXIT_OK = 0
"""Everything asked for was done."""
EXIT_FAILED = 1
"""An input failed (the others are done), or an error stopped the command (one line says why)."""
EXIT_USAGE = 2
"""A usage error: a bad option, path or value, found before any model loads."""
EXIT_INTERRUPTED = 130
"""Stopped by Ctrl-C (128 + SIGINT); finished outputs are kept."""
EXIT_BROKEN_PIPE = 141
"""The reader of stdout went away (128 + SIGPIPE, as ``| head`` makes a Unix tool end)."""
EXIT_TERMINATED = 143
"""Stopped by SIGTERM (128 + SIGTERM: ``kill``, systemd, Kubernetes); finished outputs are kept."""
