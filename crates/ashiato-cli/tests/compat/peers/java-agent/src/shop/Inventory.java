package shop;

/** Stock levels, kept in memory. */
final class Inventory {
    int available(String sku) {
        return sku.length() * 7;
    }
}
