"""A small shop, instrumented by nothing but `opentelemetry-instrument`.

Run as `opentelemetry-instrument python app.py` with OTEL_* variables; the
code itself never imports OpenTelemetry. PORT picks the listening port.

Routes:
  /orders/<id>     calls /inventory/<id> of this same app over `requests`
                   (a client span whose server span joins the trace)
  /inventory/<id>  logs a line (the logging bridge ships it with trace ids)
  /pay/<n>         fails: logs the exception, then re-raises it, so Flask
                   logs "Exception on /pay/<n> [GET]" too
"""

import logging
import os
import signal
import sys

import requests
from flask import Flask, jsonify

PORT = int(os.environ["PORT"])

app = Flask(__name__)
log = logging.getLogger("shop")


class PaymentDeclined(Exception):
    """The card issuer refused the charge."""


def charge(order):
    raise PaymentDeclined(f"card declined for order {order}")


@app.route("/orders/<int:order>")
def orders(order):
    stock = requests.get(f"http://127.0.0.1:{PORT}/inventory/{order}", timeout=10)
    stock.raise_for_status()
    return jsonify(order=order, stock=stock.json()["stock"])


@app.route("/inventory/<int:order>")
def inventory(order):
    log.warning("inventory checked for order %s", order)
    return jsonify(stock=order % 7)


@app.route("/pay/<int:order>")
def pay(order):
    try:
        charge(order)
    except PaymentDeclined:
        log.exception("payment failed for order %s", order)
        raise
    return jsonify(paid=order)


def stop(_signum, _frame):
    # SIGTERM would end the process without atexit handlers, and the SDK
    # flushes its batch processors from atexit: exit normally instead.
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    app.run(host="127.0.0.1", port=PORT, threaded=True)
