"""The project's one base error.

Every package's own base error subclasses `CRMError`, so an entry point (the `crm` CLI, a flow,
the scorer) catches one type and prints its message: messages are written for users and say what
happened and what to do. Anything that is *not* a `CRMError` is a bug or an outage and keeps its
traceback.

`transient` marks the few errors that may succeed if the same call is tried again (a server that
is restarting); everything else is a user's or the data's mistake and fails at once.
"""

from __future__ import annotations

from typing import ClassVar


class CRMError(RuntimeError):
    """An error written for users: the message says what happened and what to do."""

    transient: ClassVar[bool] = False
