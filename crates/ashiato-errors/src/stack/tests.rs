//! One real-looking stack per supported format, rendered as a frame table
//! and compared with a reviewed snapshot.

use super::*;

fn table(text: &str) -> String {
    parse(text)
        .iter()
        .map(|frame| {
            format!(
                "{} {} | {} | {}:{}",
                if frame.in_app { "app" } else { "lib" },
                frame.module,
                frame.function,
                frame.file,
                frame.line.map_or("-".to_owned(), |line| line.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn test_go_panic() {
    let stack = "panic: runtime error: index out of range [5] with length 3

goroutine 42 [running]:
github.com/acme/shop/internal/orders.(*Service).Create(0xc000123450, {0x1234, 0xc0001})
\t/src/shop/internal/orders/service.go:88 +0x1f4
github.com/acme/shop/internal/api.handleCheckout({0xa1b2c0, 0xc000456780}, 0xc000789000)
\t/src/shop/internal/api/checkout.go:41 +0x9c
net/http.HandlerFunc.ServeHTTP(0xc000010000?, {0xa1b2c0?, 0xc000456780?}, 0xc0000a0000?)
\t/usr/local/go/src/net/http/server.go:2136 +0x29
github.com/go-chi/chi/v5.(*Mux).routeHTTP(0xc000100060, {0xa1b2c0, 0xc000456780}, 0xc000789000)
\t/root/go/pkg/mod/github.com/go-chi/chi/v5@v5.0.12/mux.go:459 +0x2c2
main.main()
\t/src/shop/main.go:17 +0x25
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3285 +0x4b4
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_go_debug_stack() {
    let stack = "goroutine 7 [running]:
runtime/debug.Stack()
\t/usr/local/go/src/runtime/debug/stack.go:26 +0x5e
main.(*worker).process(0xc00001e0c0, 0x2260)
\t/app/worker.go:63 +0x85
main.main()
\t/app/main.go:12 +0x3a
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_python_traceback_with_chained_cause() {
    let stack = r#"Traceback (most recent call last):
  File "/srv/shop/venv/lib/python3.12/site-packages/psycopg/cursor.py", line 732, in execute
    raise ex.with_traceback(None)
psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "orders_pkey"

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/shop/app/api/orders.py", line 58, in create_order
    order = repository.insert(payload)
  File "/srv/shop/app/db/repository.py", line 21, in insert
    raise DuplicateOrder(order_id) from error
app.db.repository.DuplicateOrder: order 8812 exists
"#;
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_java_with_caused_by() {
    let stack = "org.springframework.web.util.NestedServletException: Request processing failed; nested exception is java.lang.IllegalStateException: payment declined
\tat org.springframework.web.servlet.FrameworkServlet.processRequest(FrameworkServlet.java:1014)
\tat com.acme.shop.web.CheckoutController.checkout(CheckoutController.java:57)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)
Caused by: java.lang.IllegalStateException: payment declined
\tat com.acme.shop.payments.PaymentService.charge(PaymentService.java:112)
\tat com.acme.shop.payments.PaymentService$$EnhancerBySpringCGLIB$$1a2b.charge(<generated>)
\tat com.acme.shop.web.CheckoutController.checkout(CheckoutController.java:55)
\t... 48 more
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_node() {
    let stack = "TypeError: Cannot read properties of undefined (reading 'id')
    at getUser (/app/src/services/users.js:27:19)
    at async Router.handle (/app/node_modules/express/lib/router/index.js:284:7)
    at /app/src/routes/index.js:12:5
    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_rust_backtrace() {
    let stack = "   0: std::backtrace_rs::backtrace::libunwind::trace
             at /rustc/05f9846f893b09a1be1fc8560e33fc3c815cfecb/library/std/src/../../backtrace/src/backtrace/libunwind.rs:116:5
   1: std::backtrace::Backtrace::create
             at /rustc/05f9846f893b09a1be1fc8560e33fc3c815cfecb/library/std/src/backtrace.rs:331:13
   2: shop::orders::Repository::insert::h5e1c3f7d9a2b4c6e
             at ./src/orders.rs:88:21
   3: shop::api::checkout
             at ./src/api.rs:41:9
   4: tokio::runtime::task::harness::poll_future
             at /home/ci/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.38.0/src/runtime/task/harness.rs:473:19
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_dotnet() {
    let stack = "System.InvalidOperationException: Sequence contains no elements
   at System.Linq.ThrowHelper.ThrowNoElementsException()
   at System.Linq.Enumerable.First[TSource](IEnumerable`1 source)
   at Shop.Orders.OrderService.GetLatest(Int32 customerId) in /src/Shop/Orders/OrderService.cs:line 42
   at Shop.Api.OrdersController.Latest(Int32 id) in /src/Shop/Api/OrdersController.cs:line 18
   at lambda_method5(Closure, Object, Object[])
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_ruby() {
    let stack = "/app/app/models/order.rb:42:in 'Order#charge!': card declined (Payments::Declined)
\tfrom /app/app/controllers/orders_controller.rb:17:in `create'
\tfrom /usr/local/bundle/gems/actionpack-7.1.3/lib/action_controller/metal/basic_implicit_render.rb:6:in `send_action'
\tfrom /usr/local/lib/ruby/3.3.0/benchmark.rb:311:in `realtime'
";
    insta::assert_snapshot!(table(stack));
}

#[test]
fn test_garbage_gives_no_frames() {
    assert!(parse("").is_empty());
    assert!(parse("something went wrong\nno frames here").is_empty());
    assert!(parse("at \nat (\n: \n0: \n\tx:y\n()").len() <= 2);
}
