package shop;

import com.sun.net.httpserver.HttpExchange;

/** {@code GET /inventory/SKU}: the downstream that checkout calls. */
final class InventoryEndpoint extends Endpoint {
    private final Inventory inventory;

    InventoryEndpoint(Inventory inventory) {
        this.inventory = inventory;
    }

    @Override
    String respond(HttpExchange exchange) {
        return Integer.toString(inventory.available(lastSegment(exchange)));
    }
}
