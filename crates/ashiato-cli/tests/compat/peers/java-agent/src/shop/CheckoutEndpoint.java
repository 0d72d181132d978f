package shop;

import com.sun.net.httpserver.HttpExchange;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** {@code GET /checkout/SKU}: asks this same service's inventory over HTTP. */
final class CheckoutEndpoint extends Endpoint {
    private final HttpClient client = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10))
            .build();
    private final int port;

    CheckoutEndpoint(int port) {
        this.port = port;
    }

    @Override
    String respond(HttpExchange exchange) throws IOException, InterruptedException {
        URI stock = URI.create("http://127.0.0.1:" + port + "/inventory/" + lastSegment(exchange));
        HttpResponse<String> answer = client.send(
                HttpRequest.newBuilder(stock).timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofString());
        return "reserved, " + answer.body().trim() + " left\n";
    }
}
