"""moto_server, with the DynamoDB requests on one table handled one at a time.

moto's TransactWriteItems deep-copies every table it touches (its rollback copy) without a lock,
so a write to the same table from another request thread while the copy runs fails the
transaction with `RuntimeError: dictionary changed size during iteration` (HTTP 500, which the
AWS SDK reports as an unknown error). Real DynamoDB has no such race. The local stack and the
tests write one table from several functions at once, so on a loaded machine this failed usage
records over and over until SQS moved them to the dead-letter queue. Each DynamoDB request here
holds a lock per table it names (taken in name order, so two requests never wait on each
other); requests on other tables, and every other service, keep moto's threads (SQS long polls
must not block each other).

The same rollback copy made moto's TransactWriteItems quadratic: it deep-copied every table it
touches once per item of the transaction, so a ledger of a few thousand items took seconds per
usage record (the load test ledgered 435 of 1,000 turns in 15 minutes). Here a transaction
keeps a copy of only the items it touches and puts them back if it is cancelled, which is what
DynamoDB's atomicity promises. Arguments are moto_server's.
"""

import contextlib
import json
import sys
import threading

import copy

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
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


class _CopyExceptTables:
    """`copy` for moto's DynamoDB models, except that a table is not copied (see the module doc)."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


dynamodb_models.copy = _CopyExceptTables
_transact_write_items = DynamoDBBackend.transact_write_items


def _item_key(backend, op_type, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    if op_type != "Put":
        return op.get("Key")
    attrs = op.get("Item") or {}
    key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs.get(table.range_key_attr)
    return key


def _transact_write_items_item_rollback(self, transact_items):
    before = []
    for item in transact_items:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        op_type, op = next(iter(item.items()))
        key = _item_key(self, op_type, op) if isinstance(op, dict) else None
        if key is None or op_type == "ConditionCheck":
            continue
        try:
            current = self.get_item(op["TableName"], key)
        except Exception:  # an invalid key: moto's own validation reports it below
            continue
        before.append((op["TableName"], key, copy.deepcopy(current)))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, item in reversed(before):
            table = self.tables[table_name]
            hash_key, range_key = self.get_keys_value(table, key)
            if item is None:
                if table.get_item(hash_key, range_key) is not None:
                    table.delete_item(hash_key, range_key)
            else:
                self.put_item(table_name, item.to_json()["Attributes"])
        raise


DynamoDBBackend.transact_write_items = _transact_write_items_item_rollback

if __name__ == "__main__":
    sys.exit(main())
