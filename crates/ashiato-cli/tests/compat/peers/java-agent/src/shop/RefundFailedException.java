package shop;

/** A failure that wraps its cause: the JVM prints both, cause last. */
public final class RefundFailedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public RefundFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
