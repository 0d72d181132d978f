package shop;

import com.sun.net.httpserver.HttpExchange;

/** {@code GET /refund/ORDER}: the ledger refuses, the refund fails with it as cause. */
final class RefundEndpoint extends Endpoint {
    private final Ledger ledger;

    RefundEndpoint(Ledger ledger) {
        this.ledger = ledger;
    }

    @Override
    String respond(HttpExchange exchange) {
        long order = Long.parseLong(lastSegment(exchange));
        try {
            ledger.reverse(order);
        } catch (IllegalStateException refused) {
            throw new RefundFailedException("refund of order " + order + " failed", refused);
        }
        return "refunded\n";
    }

    @Override
    boolean propagates() {
        return false;
    }
}
