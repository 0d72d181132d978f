package shop;

import com.sun.net.httpserver.HttpExchange;

/** {@code GET /pay/ORDER}: every card is declined; a non-numeric order fails to parse. */
final class PayEndpoint extends Endpoint {
    private final PaymentGateway gateway;

    PayEndpoint(PaymentGateway gateway) {
        this.gateway = gateway;
    }

    @Override
    String respond(HttpExchange exchange) {
        long order = Long.parseLong(lastSegment(exchange));
        gateway.charge(order);
        return "paid\n";
    }
}
