package shop;

/** The card processor, which declines everything. */
final class PaymentGateway {
    void charge(long order) {
        throw new PaymentDeclinedException("card declined for order " + order);
    }
}
