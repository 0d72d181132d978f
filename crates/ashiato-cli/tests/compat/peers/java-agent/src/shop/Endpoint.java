package shop;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A route: answers 200 with what {@link #respond} returns, 500 when it
 * throws. Either way a failure is logged at SEVERE with its exception.
 */
abstract class Endpoint implements HttpHandler {
    private static final Logger LOG = Logger.getLogger("shop");

    @Override
    public final void handle(HttpExchange exchange) throws IOException {
        String body;
        try {
            body = respond(exchange);
        } catch (RuntimeException failure) {
            LOG.log(Level.SEVERE, "request failed: " + exchange.getRequestURI().getPath(), failure);
            send(exchange, 500, "internal error\n");
            if (propagates()) {
                // rethrown so that the tracing filter around this handler
                // sees it (the JDK server then closes the finished exchange)
                throw failure;
            }
            return;
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw new IOException(interrupted);
        }
        send(exchange, 200, body);
    }

    abstract String respond(HttpExchange exchange) throws IOException, InterruptedException;

    /**
     * Whether a failure leaves the handler after its 500 is sent. A route
     * that returns false handles its failures the way a framework's error
     * page does: the request fails, only the log has the exception.
     */
    boolean propagates() {
        return true;
    }

    /** The last path segment: the order number of {@code /pay/42}. */
    static String lastSegment(HttpExchange exchange) {
        String path = exchange.getRequestURI().getPath();
        return path.substring(path.lastIndexOf('/') + 1);
    }

    private static void send(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }
}
