"""The local stack without Docker: PostgreSQL, SeaweedFS (S3), an MLflow server, a Prefect server.

`catalogue` describes the services (ports, commands, health checks), `supervisor` starts, checks
and stops them (`Stack`), `provision` gives PostgreSQL and S3 what the project needs (role,
databases, credentials, buckets). PostgreSQL is the machine's own server: `up` makes sure it
answers and `down` leaves it running.
"""

from __future__ import annotations

from infra.stack.catalogue import Service
from infra.stack.errors import StackError
from infra.stack.supervisor import ServiceStatus, Stack, StartReport

__all__ = ["Service", "ServiceStatus", "Stack", "StackError", "StartReport"]
