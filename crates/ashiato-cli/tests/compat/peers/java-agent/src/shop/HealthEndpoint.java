package shop;

import com.sun.net.httpserver.HttpExchange;

/** {@code GET /ok}. */
final class HealthEndpoint extends Endpoint {
    @Override
    String respond(HttpExchange exchange) {
        return "ok\n";
    }
}
