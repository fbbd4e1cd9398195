"""moto's server, with DynamoDB's per-item atomicity.

moto_server handles requests on many threads and checks a DynamoDB condition
expression, then writes, without a lock: two writers racing on one item can
both pass `attribute_not_exists(seq)` and the second silently overwrites the
first. Real DynamoDB never does (a conditional write is atomic per item), and
the journal's concurrency tests rely on exactly that. So DynamoDB's JSON API
(X-Amz-Target DynamoDB_20120810.*) runs one request at a time here; every
other service, and DynamoDB Streams, stays concurrent.

moto's TransactWriteItems deep-copies each table it names (to roll back), and
a table refers to its stream and back: each copy is cyclic garbage, which
CPython frees only in a full collection, and those come rarer as the heap
grows. A scan of 500 targets (a transaction per settled chunk) took this
server past 18 GB. So after a transaction, at most every two seconds, a full
collection runs (under the DynamoDB lock, while no copy is alive).

Usage: python moto-server.py HOST PORT   (the tools venv's python)
"""
import gc
import sys
import threading
import time

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

_dynamodb = threading.Lock()


_collected = [time.monotonic()]


def serialize_dynamodb(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_20120810."):
            with _dynamodb:
                body = list(app(environ, start_response))
                if target == "DynamoDB_20120810.TransactWriteItems" and time.monotonic() - _collected[0] > 2:
                    gc.collect()
                    _collected[0] = time.monotonic()
                return body
        return app(environ, start_response)

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialize_dynamodb(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
