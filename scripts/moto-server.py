"""moto's server, with DynamoDB's per-item atomicity.

moto_server handles requests on many threads and checks a DynamoDB condition
expression, then writes, without a lock: two writers racing on one item can
both pass `attribute_not_exists(seq)` and the second silently overwrites the
first. Real DynamoDB never does (a conditional write is atomic per item), and
the journal's concurrency tests rely on exactly that. So DynamoDB's JSON API
(X-Amz-Target DynamoDB_20120810.*) runs one request at a time here; every
other service, and DynamoDB Streams, stays concurrent.

TransactWriteItems is also made to cost what it costs on DynamoDB: moto backs
up every table a transaction names by deep-copying it (its items and its
whole stream history) so that it can roll back, which grows with the table and
took a 500-target scan past 19 GB. Here the backup is the items the
transaction names (at most 100), and a rollback puts them back and forgets the
stream records the transaction added: the same all-or-nothing outcome.

Usage: python moto-server.py HOST PORT   (the tools venv's python)
"""
import copy
import sys
import threading

from werkzeug.serving import run_simple
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

_dynamodb = threading.Lock()


class _TablesNotCopied:
    """The `copy` module as moto's DynamoDB backend sees it: a table is not
    deep-copied (its transaction backup is taken item by item instead)."""

    def deepcopy(self, value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def _named_items(backend, transact_items):
    """(table, hash key, range key) of each item a transaction names."""
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            key = op.get("Item" if op_type == "Put" else "Key") if table else None
            if not key or table.hash_key_attr not in key:
                continue
            range_key = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in key:
                    continue
                range_key = DynamoType(key[table.range_key_attr])
            yield table, DynamoType(key[table.hash_key_attr]), range_key


_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    backup = [
        (table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key)))
        for table, hash_key, range_key in _named_items(self, transact_items[:100])
    ]
    streams = [(t, len(t.stream_shard.items)) for t in {id(t): t for t, _, _, _ in backup}.values() if t.stream_shard]
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(backup):
            # a hash-only table keeps items by hash key, a table with a range key a dict per hash key
            slot, key = (table.items, hash_key) if range_key is None else (table.items[hash_key], range_key)
            if item is None:
                slot.pop(key, None)
            else:
                slot[key] = item
        for table, length in streams:
            del table.stream_shard.items[length:]
        raise


dynamodb_models.copy = _TablesNotCopied()
DynamoDBBackend.transact_write_items = transact_write_items


def serialize_dynamodb(app):
    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_20120810."):
            with _dynamodb:
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialize_dynamodb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
