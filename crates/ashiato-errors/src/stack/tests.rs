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

/// What the OpenTelemetry Go SDK's `RecordError(err, WithStackTrace(true))`
/// sends from a binary built with `-trimpath`: files are named by module
/// path, dependencies with `@version` and no module-cache directory, and
/// the SDK cuts the text at 2048 bytes (here mid-frame).
#[test]
fn test_go_record_error_trimpath_marks_only_the_app_in_app() {
    let stack = "goroutine 18 [running]:
go.opentelemetry.io/otel/sdk/trace.recordStackTrace(...)
\tgo.opentelemetry.io/otel/sdk@v1.47.0/trace/span.go:527
go.opentelemetry.io/otel/sdk/trace.(*recordingSpan).RecordError(0x1fcb69802000, {0xd14d00, 0x1fcb697fa320}, {0x1fcb697b1b30, 0x1, 0x1})
\tgo.opentelemetry.io/otel/sdk@v1.47.0/trace/span.go:509 +0x4de
main.(*shop).processPayment(0x1fcb69750f30, {0xd22f18, 0x1fcb697e3560}, {{0x1fcb6961dbd8, 0x8}, 0x67, 0x40938b0000000000, 0x4})
\tashiato.test/order-svc/main.go:361 +0x52f
main.(*shop).handleOrder(0x1fcb69750f30, {0xd222d0, 0x1fcb697c5780}, 0x1fcb697f0dc0)
\tashiato.test/order-svc/main.go:289 +0x52d
net/http.HandlerFunc.ServeHTTP(0x1fcb696d2540?, {0xd222d0?, 0x1fcb697c5780?}, 0x1fcb69651640?)
\tnet/http/server.go:2286 +0x29
go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.(*middleware).serveHTTP(0x1fcb696d2600, {0xd1b9f0, 0x1fcb696f30e0}, 0x1fcb697f0c80, {0xd14d60, 0x1fcb696d2540})
\tgo.opentelemetry.io/contrib/instrumentation/net/http/otelhttp@v0.72.0/handler.go:194 +0x1369
google.golang.org/grpc.(*Server).processUnaryRPC(0x1fcb6972e000, {0xd23c80, 0x1fcb6974c1e0})
\tgoogle.golang.org/grpc@v1.85.0/server.go:1431 +0xe2c
github.com/acme/shop/orders.(*Repo).Load(0x1fcb6972e000)
\tgithub.com/acme/shop/orders/repo.go:40 +0x2c
net/http.(*conn).serve(0x1fcb6971d050, {0xd22f18, 0x1fcb69751800})
\tnet/http/ser";
    let frames = parse(stack);
    let in_app: Vec<(&str, &str)> = frames
        .iter()
        .filter(|frame| frame.in_app)
        .map(|frame| (frame.module.as_str(), frame.function.as_str()))
        .collect();
    assert_eq!(
        in_app,
        [
            ("main", "(*shop).processPayment"),
            ("main", "(*shop).handleOrder"),
            ("github.com/acme/shop/orders", "(*Repo).Load"),
        ],
        "{frames:#?}"
    );
    assert_eq!(
        frames.len(),
        8,
        "the cut last frame is dropped: {frames:#?}"
    );
    assert_eq!(frames[0].function, "recordStackTrace");
    assert_eq!(frames[2].file, "ashiato.test/order-svc/main.go");
    assert_eq!(frames[2].line, Some(361));
}

/// What `@opentelemetry/sdk-node` records for an error thrown after an
/// `await` in an express 5 async handler: V8's async stack trace names the
/// anonymous handler `at async <file>:<line>:<column>`, which must give the
/// file without the `async ` marker (and stay in-app).
#[test]
fn test_node_async_anonymous_frame() {
    let stack = "Error: card declined for order 2
    at chargeCard (/srv/shop/app.js:62:9)
    at async /srv/shop/app.js:66:3";
    let frames = parse(stack);
    let located: Vec<(&str, &str, Option<u32>, bool)> = frames
        .iter()
        .map(|frame| {
            (
                frame.function.as_str(),
                frame.file.as_str(),
                frame.line,
                frame.in_app,
            )
        })
        .collect();
    assert_eq!(
        located,
        [
            ("chargeCard", "/srv/shop/app.js", Some(62), true),
            ("<anonymous>", "/srv/shop/app.js", Some(66), true),
        ]
    );
    assert_eq!(frames[1].module, frames[0].module);
}

/// dd-trace-go's `error.handling_stack` (what Orchestrion's `//dd:span`
/// sends for a returned error): bare function names, no argument lists,
/// the tracer's own frames first.
#[test]
fn test_dd_trace_go_handling_stack() {
    let stack = "github.com/DataDog/dd-trace-go/v2/ddtrace/tracer.(*Span).setTagErrorLocked
\t/root/go/pkg/mod/github.com/!data!dog/dd-trace-go/v2@v2.12.0/ddtrace/tracer/span.go:791
github.com/DataDog/dd-trace-go/v2/ddtrace/tracer.(*Span).Finish
\t/root/go/pkg/mod/github.com/!data!dog/dd-trace-go/v2@v2.12.0/ddtrace/tracer/span.go:1081
main.charge
\t/src/orders/main.go:89
main.chargeOrder
\t/src/orders/main.go:80
net/http.HandlerFunc.ServeHTTP
\t/usr/local/go/src/net/http/server.go:2286
github.com/go-chi/chi/v5.(*Mux).routeHTTP
\t/root/go/pkg/mod/github.com/go-chi/chi/v5@v5.5.0/mux.go:491
runtime.goexit
\t/usr/local/go/src/runtime/asm_amd64.s:1771";
    let parsed = parse(stack);
    let frames: Vec<(&str, &str, bool)> = parsed
        .iter()
        .map(|frame| (frame.module.as_str(), frame.function.as_str(), frame.in_app))
        .collect();
    assert_eq!(
        frames,
        [
            (
                "github.com/DataDog/dd-trace-go/v2/ddtrace/tracer",
                "(*Span).setTagErrorLocked",
                false
            ),
            (
                "github.com/DataDog/dd-trace-go/v2/ddtrace/tracer",
                "(*Span).Finish",
                false
            ),
            ("main", "charge", true),
            ("main", "chargeOrder", true),
            ("net/http", "HandlerFunc.ServeHTTP", false),
            ("github.com/go-chi/chi/v5", "(*Mux).routeHTTP", false),
            ("runtime", "goexit", false),
        ]
    );
}

#[test]
fn test_module_names_survive_a_deploy_to_a_versioned_folder() {
    // (path, extensions, module): a release folder never names the module,
    // a package folder does
    let cases: &[(&str, &[&str], &str)] = &[
        ("/srv/release-42/app.py", &[".py"], "app"),
        ("/srv/releases/20261204120000/app.py", &[".py"], "app"),
        (
            "/tmp/peers/python-auto-3f2a9c1d8e7b6a50/app.py",
            &[".py"],
            "app",
        ),
        ("/srv/shop-v1.2.3/server.js", &[".js"], "server"),
        ("/srv/release-42/shop/orders.py", &[".py"], "shop.orders"),
        ("/app/api/v2/handlers.py", &[".py"], "v2.handlers"),
        ("/app/oauth2/client.py", &[".py"], "oauth2.client"),
        (
            "/usr/lib/python3/site-packages/flask/app.py",
            &[".py"],
            "flask.app",
        ),
        ("app.py", &[".py"], "app"),
    ];
    for (path, extensions, module) in cases {
        assert_eq!(path_module(path, extensions), *module, "{path}");
    }
}
