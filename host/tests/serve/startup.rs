//! `serve` while it starts: health probes are answered during the self-test (204 on `/ping`,
//! 503 elsewhere), the `{"listening"}` line comes only once it is ready, and a start that fails
//! or is interrupted prints nothing there. The self-test is held with the test hook
//! `POWHOST_TEST_HOLD_SELFTEST` (it waits for a line on stdin), so the start lasts exactly as
//! long as the test needs.

use super::*;
use std::process::{ChildStdin, ExitStatus};

/// A `powhost serve` held in its self-test, on a port the test chose (the address is known
/// before the listening line), killed when dropped.
struct HeldStart {
    child: Child,
    release: Option<ChildStdin>,
    addr: SocketAddr,
}

impl HeldStart {
    fn new(env: &[(&str, &str)]) -> Self {
        // A free port, released for serve to bind.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_powhost"))
            .args(["serve", "--backend", "cpu", "--listen", &addr.to_string()])
            .env_remove("RUST_LOG")
            .env("LOG_LEVEL", "error")
            .env("POWHOST_TEST_HOLD_SELFTEST", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start powhost serve");
        let release = child.stdin.take();
        Self {
            child,
            release,
            addr,
        }
    }

    /// The first answer to `path`, once the port is bound (refused until then).
    fn first_answer(&self, path: &str) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match request(self.addr, "GET", path) {
                Ok(answer) => return answer,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    assert!(Instant::now() < deadline, "serve never bound {}", self.addr);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("GET {path}: {e}"),
            }
        }
    }

    /// Let the self-test run.
    fn release(&mut self) {
        let mut stdin = self.release.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&mut self) -> String {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

impl Drop for HeldStart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    /// The status line and headers, lowercased.
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// One request on its own connection, read to the end (`Connection: close`).
fn request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not HTTP: {text:?}"));
    Ok(Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

#[test]
fn probes_hear_starting_until_the_server_is_ready() {
    let mut server = HeldStart::new(&[]);
    let ping = server.first_answer("/ping");
    assert_eq!(ping.status, 204, "initializing, for the load balancer");
    assert!(ping.head.contains("connection: close"), "{}", ping.head);

    let ready = request(server.addr, "GET", "/readyz").unwrap();
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["ready"], json!(false));
    for path in ["/health", "/livez"] {
        let health = request(server.addr, "GET", path).unwrap();
        assert_eq!(health.status, 503, "{path}");
        assert_eq!(health.json()["status"], json!("starting"), "{path}");
    }
    let job = request(server.addr, "POST", "/runsync").unwrap();
    assert_eq!(job.status, 503);
    assert!(job.head.contains("retry-after:"), "{}", job.head);
    let detail = job.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("still starting"), "{detail}");

    server.release();
    let mut line = String::new();
    BufReader::new(server.child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(listening["listening"], json!(server.addr.to_string()));
    // Ready: the real server answers on the same address.
    assert_eq!(request(server.addr, "GET", "/ping").unwrap().status, 200);
    let ready = request(server.addr, "GET", "/readyz").unwrap();
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], json!(true));
}

/// No signal handler is installed before the server is ready: SIGTERM ends the start at once,
/// and nothing says it listened.
#[test]
fn sigterm_during_the_start_stops_it_at_once() {
    let mut server = HeldStart::new(&[]);
    assert_eq!(server.first_answer("/ping").status, 204);
    let ok = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = server.wait(Duration::from_secs(10));
    assert!(!status.success(), "{status}");
    assert_eq!(server.stdout(), "", "it never said it listened");
}

/// A start that fails after probes were answered exits as before: code 1, the reason on
/// stderr, nothing on stdout.
#[test]
fn a_start_that_fails_while_probed_exits_and_never_says_it_listened() {
    let mut server = HeldStart::new(&[("POWHOST_INJECT_FAULT", "logits")]);
    assert_eq!(server.first_answer("/ping").status, 204);
    server.release();
    let status = server.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
    assert_eq!(server.stdout(), "");
    let stderr = server.stderr();
    assert!(stderr.contains("failed the self-test"), "{stderr}");
}
