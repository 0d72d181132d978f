package shop;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * A small shop on the JDK's own HTTP server, with no tracing code at all:
 * the OpenTelemetry Java agent instruments it from the outside.
 *
 * <p>Usage: {@code java -javaagent:opentelemetry-javaagent.jar -cp classes shop.App PORT}
 */
public final class App {
    private App() {}

    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(args[0]);
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0);
        ExecutorService workers = Executors.newFixedThreadPool(4);
        server.setExecutor(workers);
        Inventory inventory = new Inventory();
        server.createContext("/ok", new HealthEndpoint());
        server.createContext("/inventory", new InventoryEndpoint(inventory));
        server.createContext("/checkout", new CheckoutEndpoint(port));
        server.createContext("/pay", new PayEndpoint(new PaymentGateway()));
        server.createContext("/refund", new RefundEndpoint(new Ledger()));
        // SIGTERM: stop taking requests; the agent's own hook then flushes
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(0);
            workers.shutdown();
        }));
        server.start();
        System.out.println("listening " + port);
    }
}
