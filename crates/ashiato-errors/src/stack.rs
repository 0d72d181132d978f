//! Stack text → frames, for Go, Python, JVM, JavaScript/Node, Rust, .NET
//! and Ruby, with in-app marking.
//!
//! The parser is line based and format-sniffing per line: a stack may be
//! any of the formats (or a mixture, e.g. a Python traceback with a chained
//! cause), and the caller rarely knows the language. Lines that match no
//! format (exception headers, `... 12 more`) are skipped. Frames come out
//! crash site first, whatever the language's own order (Python prints the
//! crash site last, so its frames are reversed per traceback), and root
//! cause first: a JVM `Caused by:` section moves ahead of the exception
//! that wrapped it (Python already prints the cause first).
//!
//! `module` is chosen to survive deploys: a package or class name, or the
//! last two segments of a file path (never the absolute directory a release
//! was unpacked into). Line numbers are kept for display only; fingerprints
//! never use them.

/// One parsed stack frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub function: String,
    pub module: String,
    pub file: String,
    pub line: Option<u32>,
    /// Application code: not the standard library, not a dependency, not
    /// runtime or panic machinery.
    pub in_app: bool,
}

/// Parses stack text of any supported format; never panics, an unknown
/// format gives no frames.
pub fn parse(text: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    // Python tracebacks print the crash site last: collect each block and
    // reverse it so every language ends up crash site first
    let mut python_block: Vec<Frame> = Vec::new();
    let mut pending_go: Option<String> = None;
    // the JVM prints the outer exception first and each cause after it;
    // the root cause is where it broke (.NET already prints inner first)
    let mut cause_starts: Vec<usize> = Vec::new();
    for raw in text.lines().take(MAX_LINES) {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("Caused by:") {
            cause_starts.push(frames.len());
            continue;
        }
        if let Some(frame) = python_frame(line) {
            python_block.push(frame);
            continue;
        }
        if !python_block.is_empty() && python_block_ends(raw) {
            flush_python(&mut python_block, &mut frames);
        }
        if let Some(function) = pending_go.take()
            && let Some(frame) = go_location(&function, raw)
        {
            frames.push(frame);
            continue;
        }
        if let Some(location) = line.strip_prefix("at ")
            && let Some(last) = frames.last_mut()
            && last.file.is_empty()
            && is_rust_location(location)
        {
            fill_rust_location(last, location);
            continue;
        }
        if let Some(frame) = jvm_dotnet_node_frame(line)
            .or_else(|| ruby_frame(line))
            .or_else(|| rust_frame(line))
        {
            frames.push(frame);
            continue;
        }
        if is_go_function_line(raw) {
            pending_go = Some(line.to_owned());
        }
    }
    flush_python(&mut python_block, &mut frames);
    let mut frames = root_cause_first(frames, &cause_starts);
    frames.truncate(MAX_FRAMES);
    frames
}

/// Reorders `Caused by` sections so the deepest cause comes first.
fn root_cause_first(mut frames: Vec<Frame>, cause_starts: &[usize]) -> Vec<Frame> {
    if cause_starts.is_empty() {
        return frames;
    }
    let mut sections = Vec::new();
    for start in cause_starts.iter().rev() {
        let start = (*start).min(frames.len());
        sections.push(frames.split_off(start));
    }
    sections.push(frames);
    sections.into_iter().flatten().collect()
}

/// Bounds on work per stack: stacks are client data.
const MAX_LINES: usize = 2_000;
const MAX_FRAMES: usize = 200;

fn flush_python(block: &mut Vec<Frame>, frames: &mut Vec<Frame>) {
    frames.extend(block.drain(..).rev());
}

/// A Python traceback block ends at its exception line (unindented text
/// such as `ValueError: bad` or the chaining sentence).
fn python_block_ends(raw: &str) -> bool {
    !raw.starts_with(' ') && !raw.starts_with('\t')
}

/// `File "/app/shop/orders.py", line 12, in create`
fn python_frame(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix("File \"")?;
    let (file, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(", line ")?;
    let (number, function) = match rest.split_once(", in ") {
        Some((number, function)) => (number, function.trim()),
        None => (rest, "<module>"),
    };
    let in_app = !(file.contains("site-packages")
        || file.contains("dist-packages")
        || file.contains("/lib/python")
        || file.starts_with('<'));
    Some(Frame {
        function: function.to_owned(),
        module: path_module(file, &[".py"]),
        file: file.to_owned(),
        line: number.trim().parse().ok(),
        in_app,
    })
}

/// The last two segments of a path without extension, dot-joined: stable
/// when a release moves to another directory. A parent directory that
/// names a release (`release-42`, `releases/20261204120000`, a build
/// hash) is left out, else a script at the top of a versioned deploy
/// folder would get a new module, and every error a new issue, with every
/// deploy.
fn path_module(file: &str, extensions: &[&str]) -> String {
    let file = file
        .rsplit_once("node_modules/")
        .map_or(file, |(_, rest)| rest);
    let file = file
        .rsplit_once("site-packages/")
        .map_or(file, |(_, rest)| rest);
    let mut segments: Vec<&str> = file
        .split(['/', '\\'])
        .filter(|segment| !segment.is_empty() && *segment != ".")
        .collect();
    let keep = segments.len().saturating_sub(2);
    segments.drain(..keep);
    if segments.len() == 2 && names_a_release(segments[0]) {
        segments.remove(0);
    }
    let mut module = segments.join(".");
    for extension in extensions {
        if let Some(stripped) = module.strip_suffix(extension) {
            module = stripped.to_owned();
            break;
        }
    }
    module
}

/// A directory named after a release rather than a package: two or more
/// digits (`release-42`, `app-v1.2.3`, a timestamp, most build hashes).
/// Package names carry at most one (`oauth2`, `v2`, `http2`).
fn names_a_release(segment: &str) -> bool {
    segment.bytes().filter(u8::is_ascii_digit).count() >= 2
}

/// A Go function line of `debug.Stack()` or a panic: unindented, ends with
/// `(...)` or an argument list, followed by a tab-indented location line.
/// dd-trace-go's `error.handling_stack` prints the bare name
/// (`main.charge`, `net/http.HandlerFunc.ServeHTTP`): it counts only if a
/// location line follows, which [`go_location`] checks.
fn is_go_function_line(raw: &str) -> bool {
    let line = raw.trim_end();
    let created_by = line.strip_prefix("created by ");
    let line = created_by.unwrap_or(line);
    let line = line.split(" in goroutine").next().unwrap_or(line);
    let name = match line.rfind('(') {
        Some(index) if line.ends_with(')') => &line[..index],
        _ => line,
    };
    !raw.starts_with([' ', '\t'])
        && !name.is_empty()
        && !name.contains(' ')
        && (line.ends_with(')') || (created_by.is_none() && name.contains('.')))
}

/// `\t/app/orders/service.go:42 +0x1d` after a Go function line.
fn go_location(function_line: &str, raw: &str) -> Option<Frame> {
    if !raw.starts_with('\t') {
        return None;
    }
    let location = raw.trim();
    let location = location
        .split_once(" +0x")
        .map_or(location, |(path, _)| path);
    let (file, number) = location.rsplit_once(':')?;
    let line: u32 = number.parse().ok()?;
    let call = function_line
        .strip_prefix("created by ")
        .unwrap_or(function_line);
    let call = call.split(" in goroutine").next().unwrap_or(call);
    // cut the argument list: the last `(` that opens it
    let name = match call.rfind('(') {
        Some(index) if call.ends_with(')') => &call[..index],
        _ => call,
    };
    let (package, function) = split_go_name(name);
    let first_segment = package.split('/').next().unwrap_or("");
    let standard = !first_segment.contains('.') && package != "main";
    // in the module cache, vendored, or (built with -trimpath, as release
    // builds are) named by module path with its version:
    // `go.opentelemetry.io/otel/sdk@v1.47.0/trace/span.go`
    let dependency = file.contains("/pkg/mod/")
        || file.contains("/vendor/")
        || file.split('/').any(|segment| segment.contains("@v"));
    let machinery = package == "runtime" || package.starts_with("runtime/");
    Some(Frame {
        function: function.to_owned(),
        module: package.to_owned(),
        file: file.to_owned(),
        line: Some(line),
        in_app: !(standard || dependency || machinery),
    })
}

/// `github.com/acme/shop/orders.(*Service).Create` → package and function:
/// the package ends at the first `.` after the last `/`.
fn split_go_name(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |index| index + 1);
    match name[slash..].find('.') {
        Some(dot) => (&name[..slash + dot], &name[slash + dot + 1..]),
        None => (name, ""),
    }
}

/// Lines starting with `at `: JVM (`at a.B.m(B.java:1)`), .NET
/// (`at A.B.M(String s) in C:\x\B.cs:line 3`) or Node
/// (`at fn (/app/x.js:1:2)`, `at /app/x.js:1:2`, and V8's async stack
/// trace frame of an anonymous function, `at async /app/x.js:1:2`).
fn jvm_dotnet_node_frame(line: &str) -> Option<Frame> {
    let rest = line.strip_prefix("at ")?.trim();
    if let Some(open) = rest.find(" (")
        && rest.ends_with(')')
    {
        return node_frame(&rest[..open], &rest[open + 2..rest.len() - 1]);
    }
    let Some(open) = rest.find('(') else {
        let location = rest.strip_prefix("async ").unwrap_or(rest);
        return node_frame("<anonymous>", location);
    };
    let name = &rest[..open];
    let after = &rest[open + 1..];
    let (inside, tail) = after.split_once(')')?;
    if let Some(location) = tail.trim().strip_prefix("in ") {
        return Some(dotnet_frame(name, Some(location)));
    }
    if is_jvm_source(inside) {
        return Some(jvm_frame(name, inside));
    }
    Some(dotnet_frame(name, None))
}

fn is_jvm_source(inside: &str) -> bool {
    inside == "Native Method"
        || inside == "Unknown Source"
        || inside.contains(".java")
        || inside.contains(".kt")
        || inside.contains(".scala")
        || inside.contains(".groovy")
        || inside.starts_with('<')
}

/// Java frames may carry a module prefix (`java.base/java.lang.Thread.run`).
fn jvm_frame(name: &str, source: &str) -> Frame {
    let name = name.rsplit_once('/').map_or(name, |(_, rest)| rest);
    let (class, method) = name.rsplit_once('.').unwrap_or(("", name));
    // generated proxies (`Foo$$EnhancerBySpringCGLIB$$1a2b`) change names per build
    let class = class.split("$$").next().unwrap_or(class);
    let (file, number) = match source.rsplit_once(':') {
        Some((file, number)) => (file, number.parse().ok()),
        None => (source, None),
    };
    const LIBRARY: &[&str] = &[
        "java.",
        "javax.",
        "jdk.",
        "sun.",
        "com.sun.",
        "kotlin.",
        "kotlinx.",
        "scala.",
        "org.springframework.",
        "org.apache.",
        "io.netty.",
        "org.hibernate.",
        "com.fasterxml.",
        "io.grpc.",
        "reactor.",
        "okhttp3.",
        "org.eclipse.jetty.",
        "com.zaxxer.",
        "io.opentelemetry.",
    ];
    Frame {
        function: method.to_owned(),
        module: class.to_owned(),
        file: file.to_owned(),
        line: number,
        in_app: !LIBRARY.iter().any(|prefix| class.starts_with(prefix)),
    }
}

fn dotnet_frame(name: &str, location: Option<&str>) -> Frame {
    let (class, method) = name.rsplit_once('.').unwrap_or(("", name));
    let (file, number) = match location.and_then(|text| text.rsplit_once(":line ")) {
        Some((file, number)) => (file, number.trim().parse().ok()),
        None => (location.unwrap_or(""), None),
    };
    const LIBRARY: &[&str] = &["System.", "Microsoft.", "Npgsql.", "Newtonsoft."];
    let machinery = name.starts_with("lambda_method") || class.is_empty();
    Frame {
        function: method.to_owned(),
        module: class.to_owned(),
        file: file.to_owned(),
        line: number,
        in_app: !(machinery || LIBRARY.iter().any(|prefix| class.starts_with(prefix))),
    }
}

/// `fn` and `/app/src/x.js:10:15`; `None` unless the location ends in
/// `:line:column` (then it is no Node frame).
fn node_frame(function: &str, location: &str) -> Option<Frame> {
    let (rest, _column) = location.rsplit_once(':')?;
    let (file, number) = rest.rsplit_once(':')?;
    let line: u32 = number.parse().ok()?;
    let function = function
        .trim_start_matches("async ")
        .trim_start_matches("new ");
    let file = file.strip_prefix("file://").unwrap_or(file);
    let in_app = !(file.contains("node_modules")
        || file.starts_with("node:")
        || file.starts_with("internal/"));
    Some(Frame {
        function: function.to_owned(),
        module: path_module(file, &[".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx"]),
        file: file.to_owned(),
        line: Some(line),
        in_app,
    })
}

/// `/app/models/user.rb:42:in 'save'` (also the older backtick quote and a
/// leading `from `).
fn ruby_frame(line: &str) -> Option<Frame> {
    let line = line.strip_prefix("from ").unwrap_or(line);
    let (location, function) = line.split_once(":in ")?;
    let quote = |c: char| c == '\'' || c == '`' || c == '"';
    let function = function.trim_start_matches(quote);
    let function = function.split(quote).next().unwrap_or(function);
    let (file, number) = location.rsplit_once(':')?;
    let line: u32 = number.parse().ok()?;
    let in_app = !(file.contains("/gems/")
        || file.contains("/vendor/bundle/")
        || file.contains("/lib/ruby/")
        || file.starts_with('<'));
    let function = function
        .rsplit_once(['#', '.'])
        .map_or(function, |(_, method)| method);
    Some(Frame {
        function: function.to_owned(),
        module: path_module(file, &[".rb"]),
        file: file.to_owned(),
        line: Some(line),
        in_app,
    })
}

/// `  12: myapp::handlers::checkout::h3f2a…` (a `std::backtrace` frame).
fn rust_frame(line: &str) -> Option<Frame> {
    let (index, name) = line.split_once(": ")?;
    if index.is_empty() || !index.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let name = name.trim();
    let name = match name.rsplit_once("::h") {
        Some((head, hash))
            if hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit()) =>
        {
            head
        }
        _ => name,
    };
    let (module, function) = name.rsplit_once("::").unwrap_or(("", name));
    const MACHINERY: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "tokio::",
        "futures",
        "backtrace::",
        "rust_begin_unwind",
        "__rust",
        "<core::",
        "<alloc::",
        "<std::",
        "__libc",
        "_start",
        "start_thread",
        "clone",
    ];
    let in_app = !MACHINERY.iter().any(|prefix| name.starts_with(prefix));
    Some(Frame {
        function: function.to_owned(),
        module: module.to_owned(),
        file: String::new(),
        line: None,
        in_app,
    })
}

fn is_rust_location(location: &str) -> bool {
    !location.contains('(') && location.contains(".rs:")
}

/// `at ./src/handlers.rs:42:9`: dependency and toolchain paths are not in-app.
fn fill_rust_location(frame: &mut Frame, location: &str) {
    let mut parts = location.rsplitn(3, ':');
    let _column = parts.next();
    let number = parts.next().and_then(|text| text.parse().ok());
    let file = parts.next().unwrap_or(location);
    frame.file = file.to_owned();
    frame.line = number;
    if file.starts_with("/rustc/") || file.contains("/.cargo/registry/") {
        frame.in_app = false;
    }
}

#[cfg(test)]
mod tests;
