"""moto_server, with the DynamoDB requests on one table handled one at a time.

moto's TransactWriteItems deep-copies every table it touches (its rollback copy) without a lock,
so a write to the same table from another request thread while the copy runs fails the
transaction with `RuntimeError: dictionary changed size during iteration` (HTTP 500, which the
AWS SDK reports as an unknown error). Real DynamoDB has no such race. The local stack and the
tests write one table from several functions at once, so on a loaded machine this failed usage
records over and over until SQS moved them to the dead-letter queue. Each DynamoDB request here
holds a lock per table it names (taken in name order, so two requests never wait on each
other); requests on other tables, and every other service, keep moto's threads (SQS long polls
must not block each other). Arguments are moto_server's.
"""

import contextlib
import json
import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()
_call_action = DynamoHandler.call_action


def _lock(table: str) -> threading.RLock:
    with _locks_guard:
        return _locks.setdefault(table, threading.RLock())


def _tables(body) -> list[str]:
    """The tables a DynamoDB JSON request names: TableName, RequestItems, TransactItems."""
    try:
        request = json.loads(body or "{}")
    except (TypeError, ValueError):
        return []
    if not isinstance(request, dict):
        return []
    names = set()
    if isinstance(request.get("TableName"), str):
        names.add(request["TableName"])
    if isinstance(request.get("RequestItems"), dict):
        names.update(request["RequestItems"].keys())
    for item in request.get("TransactItems") or []:
        for op in item.values() if isinstance(item, dict) else []:
            if isinstance(op, dict) and isinstance(op.get("TableName"), str):
                names.add(op["TableName"])
    return sorted(names)


def _call_action_per_table(self):
    with contextlib.ExitStack() as held:
        for table in _tables(self.body):
            held.enter_context(_lock(table))
        return _call_action(self)


DynamoHandler.call_action = _call_action_per_table

if __name__ == "__main__":
    sys.exit(main())
