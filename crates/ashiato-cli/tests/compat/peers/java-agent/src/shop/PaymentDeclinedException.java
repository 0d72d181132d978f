package shop;

/** The app's own failure type: the issue it makes must be named after it. */
public final class PaymentDeclinedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public PaymentDeclinedException(String message) {
        super(message);
    }
}
