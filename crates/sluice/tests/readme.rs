//! The README as executable documentation: its run command, its "First event" commands and its
//! configuration block, taken verbatim from `README.md` and run, with the answers it shows checked.
//!
//! What is run, and the one substitution:
//! - The commands are read from the README at run time (`SLUICE_README` overrides the path, to
//!   show that a broken README fails this test), never copied here.
//! - `cargo run --release -- ` and `cargo run --release -q -- ` are replaced by the `sluice`
//!   binary this test suite was built with: a release build takes ten minutes, and both run the
//!   same `main`. The prefix must be exactly one of those two strings; any other `cargo` in a
//!   command fails the test, so a README edited into another command does not pass unnoticed.
//!   Everything after the prefix, and every other command (the `curl`s), runs verbatim through
//!   `bash -c`, and `KEY` is captured by the README's own `KEY=$(...)`.
//! - The commands run in a fresh temporary directory, with no `SLUICE_*` variable of the test's
//!   environment, so the data lands in that directory's `./.sluice` as the README says.
//! - The server listens on its default address, 127.0.0.1:8080, for real, because the `curl`s
//!   address `localhost:8080` and stay verbatim; the test fails at once, saying so, when something
//!   else holds that port. Only this test uses port 8080.
//! - The AWS data path block runs whole, as one script: moto on 127.0.0.1:5000 (only this test
//!   uses that port), the provisioning and the server (its listeners moved off 8080 and 9464 by
//!   `SLUICE_LISTEN` and `SLUICE_ADMIN__LISTEN`); an event then goes through it to DynamoDB and back.
//! - The configuration block (the ```toml block under "Operating it") is saved as `sluice.toml`
//!   and passed with `--config`; there `SLUICE_LISTEN=127.0.0.1:0` and `SLUICE_ADMIN__LISTEN`
//!   (the environment layer over the file, as the README describes) move the listeners off 8080
//!   and the admin port 9464, so the three tests can run at once (they raced for 9464 before).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::BIN;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The only `cargo` invocations a README command may use; replaced by the built binary.
const CARGO_PREFIXES: [&str; 2] = ["cargo run --release -q -- ", "cargo run --release -- "];
/// The address the README's server listens on and its `curl`s address.
const README_ADDR: &str = "127.0.0.1:8080";
const WAIT: Duration = Duration::from_secs(60);

fn readme_path() -> PathBuf {
    match std::env::var_os("SLUICE_README") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    }
}

fn readme() -> String {
    let path = readme_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The text of the `## <title>` section, up to the next `## ` heading.
fn section<'a>(readme: &'a str, title: &str) -> &'a str {
    let heading = format!("## {title}\n");
    let start = readme
        .find(&heading)
        .unwrap_or_else(|| panic!("README has no section {heading:?}"))
        + heading.len();
    let rest = &readme[start..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The fenced blocks of `text` whose opening fence is exactly ```` ```<lang> ````.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let open = format!("```{lang}");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_end() == open => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unterminated ```{lang} block");
    out
}

/// One shell command of a block, continuation lines joined, with the answer the README shows
/// for it (the `# ...` comment lines right after it).
#[derive(Debug)]
struct Step {
    command: String,
    shown: Vec<String>,
}

fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('#') {
            let step = steps.last_mut().expect("a shown answer before any command");
            step.shown.push(trimmed.trim_start_matches('#').trim().to_owned());
            continue;
        }
        if pending.is_empty() && trimmed.is_empty() {
            continue;
        }
        // A trailing backslash continues the command on the next line; both lines are kept
        // as written, backslash and newline included, for bash to join.
        pending.push_str(line);
        if line.ends_with('\\') {
            pending.push('\n');
        } else {
            steps.push(Step {
                command: std::mem::take(&mut pending),
                shown: Vec::new(),
            });
        }
    }
    assert!(pending.is_empty(), "a command ends in a continuation: {pending:?}");
    steps
}

/// The command with each exact `cargo run --release [-q] -- ` replaced by the built binary.
fn substitute(command: &str) -> String {
    let binary = format!("'{}' ", BIN.replace('\'', r"'\''"));
    let mut out = command.to_owned();
    for prefix in CARGO_PREFIXES {
        out = out.replace(prefix, &binary);
    }
    assert!(
        !out.contains("cargo"),
        "a README command runs cargo other than as {CARGO_PREFIXES:?}: {command:?}"
    );
    out
}

/// `bash -c <script>` in `dir`, with no `SLUICE_*` variable of the test's environment.
fn bash(dir: &Path, script: &str, vars: &[(String, String)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        cmd.env_remove(k);
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The background server; killed when dropped, whatever happened.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the exit status once it has drained.
    fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_curl() {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "the README's commands use curl: install it (apt-get install curl)");
}

/// Fails, saying why, when anything already serves the README's address.
fn require_free_port() {
    if let Err(e) = TcpListener::bind(README_ADDR) {
        panic!(
            "the README's server listens on {README_ADDR} and its curl commands address \
             localhost:8080, which this test runs verbatim; something else holds that port ({e}): \
             stop it and run the test again"
        );
    }
    let v6: SocketAddr = "[::1]:8080".parse().unwrap();
    assert!(
        TcpStream::connect_timeout(&v6, Duration::from_millis(500)).is_err(),
        "something listens on [::1]:8080, where curl's localhost may land first: stop it"
    );
}

fn wait_listening(server: &mut Server) {
    let addr: SocketAddr = README_ADDR.parse().unwrap();
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the README's run command exited ({status}):\n{}", server.log());
        }
        assert!(
            start.elapsed() < WAIT,
            "the README's server did not listen on {README_ADDR}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An assignment `NAME=$(...)`, as the README captures `KEY`.
fn assignment(command: &str) -> Option<&str> {
    let (name, value) = command.split_once('=')?;
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (valid && value.starts_with("$(") && value.trim_end().ends_with(')')).then_some(name)
}

#[test]
fn readme_run_command_and_first_event_work_as_written() {
    require_curl();
    let readme = readme();
    let run_blocks = blocks(section(&readme, "The two commands"), "sh");
    let run = steps(run_blocks.first().expect("no ```sh block in \"The two commands\""));
    assert_eq!(run.len(), 1, "the run block is one command: {run:?}");
    let first_blocks = blocks(section(&readme, "First event"), "sh");
    let first_event = steps(first_blocks.first().expect("no ```sh block in \"First event\""));
    assert!(first_event.len() >= 3, "First event: {first_event:?}");

    require_free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = bash(dir.path(), &format!("exec {}", substitute(&run[0].command)), &[])
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("spawn bash");
    let mut server = Server { child, log };
    wait_listening(&mut server);
    assert!(
        dir.path().join(".sluice").is_dir(),
        "the README says the data is in ./.sluice"
    );

    // The First event commands, in order, with the variables they capture.
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut posted: Option<String> = None;
    for (i, step) in first_event.iter().enumerate() {
        let command = substitute(&step.command);
        if let Some(name) = assignment(&step.command) {
            let script = format!("set -e\n{command}\nprintf '%s' \"${name}\"");
            let out = bash(dir.path(), &script, &vars).output().unwrap();
            let (stdout, stderr) = text(&out);
            assert!(out.status.success(), "{:?} failed: {stderr}", step.command);
            assert!(!stdout.is_empty(), "{:?} captured nothing: {stderr}", step.command);
            vars.push((name.to_owned(), stdout));
            continue;
        }
        let is_last = i == first_event.len() - 1;
        let deadline = Instant::now() + WAIT;
        loop {
            let out = bash(dir.path(), &command, &vars).output().unwrap();
            let (stdout, stderr) = text(&out);
            assert!(out.status.success(), "{:?} failed: {stderr}", step.command);
            if !step.shown.is_empty() {
                // The answer the README shows: `HTTP/1.1 202 Accepted  {"id":"evt_..."}`.
                let shown = step.shown.join("\n");
                assert!(
                    shown.starts_with("HTTP/1.1 202 Accepted") && shown.contains(r#"{"id":"evt_"#),
                    "the README shows another answer than 202 with an evt_ id: {shown:?}"
                );
                let status_line = stdout.lines().next().unwrap_or_default().trim_end();
                assert_eq!(
                    status_line, "HTTP/1.1 202 Accepted",
                    "{:?} answered:\n{stdout}",
                    step.command
                );
                let body = stdout.split("\r\n\r\n").nth(1).unwrap_or_default();
                let body: Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{:?}: body is not JSON ({e}):\n{stdout}", step.command));
                let id = body["id"].as_str().unwrap_or_default();
                assert!(id.starts_with("evt_"), "no evt_ id: {stdout}");
                posted = Some(id.to_owned());
                break;
            }
            if is_last {
                // The list: the event just posted is there once the worker has stored it
                // (processing is asynchronous, so the command is repeated until then).
                let id = posted.as_deref().expect("the list comes after the POST");
                let page: Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("{:?}: not JSON ({e}):\n{stdout}", step.command));
                let events = page["events"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{:?} did not answer a page of events:\n{stdout}", step.command));
                if events.iter().any(|e| e["id"] == id) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{id} never appeared in the list: {stdout}\nserver:\n{}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            break;
        }
    }
    assert!(posted.is_some(), "no command of First event shows the 202 answer");
    let status = server.stop();
    assert!(
        status.success(),
        "the server did not stop cleanly: {status}\n{}",
        server.log()
    );
}

#[test]
fn readme_configuration_block_starts_the_server() {
    let readme = readme();
    let toml_blocks = blocks(section(&readme, "Operating it"), "toml");
    let config = toml_blocks.first().expect("no ```toml block in \"Operating it\"");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sluice.toml"), config).unwrap();

    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", "sluice.toml"])
        .current_dir(dir.path())
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env("SLUICE_ADMIN__LISTEN", "127.0.0.1:0");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_")) {
        cmd.env_remove(k);
    }
    let (mut child, addr, logs) = common::spawn_serve(cmd);

    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        dir.path().join(".sluice").is_dir(),
        "data_dir from the block: {:?}",
        logs.lock().unwrap()
    );
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {:?}", logs.lock().unwrap());
}

#[test]
fn the_extraction_reads_commands_and_answers_as_a_shell_would() {
    let block = "A=$(cargo run --release -q -- keys create --tenant acme)\n\
                 curl -si x \\\n  -d '{}'\n# HTTP/1.1 202 Accepted  {\"id\":\"evt_1\"}\n\ncurl -s y\n";
    let s = steps(block);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(assignment(&s[0].command), Some("A"));
    assert_eq!(s[1].command, "curl -si x \\\n  -d '{}'");
    assert_eq!(s[1].shown, [r#"HTTP/1.1 202 Accepted  {"id":"evt_1"}"#]);
    assert!(substitute(&s[0].command).starts_with(&format!("A=$('{BIN}' keys create")));
    assert_eq!(substitute("cargo run --release -- serve"), format!("'{BIN}' serve"));
    assert!(std::panic::catch_unwind(|| substitute("cargo run -- serve")).is_err());
    assert!(std::panic::catch_unwind(|| substitute("cargo run --release --bin sluice -- serve")).is_err());
}

/// Where the README's moto listens: only this test uses the port.
const MOTO_ADDR: &str = "127.0.0.1:5000";

/// A process group (the README's block: moto in the background, the server in front); the whole
/// group is killed when dropped, whatever happened.
struct Group {
    child: Child,
    log: PathBuf,
}

impl Group {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // `--` first: procps' kill reads a bare `-PID` after the signal as something else.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn readme_aws_data_path_on_moto_works_as_written() {
    use std::os::unix::process::CommandExt as _;
    let readme = readme();
    let section_blocks = blocks(section(&readme, "The AWS data path from one machine"), "sh");
    let block = steps(
        section_blocks
            .first()
            .expect("no ```sh block in the AWS data path section"),
    );
    assert_eq!(
        block.len(),
        5,
        "moto, its environment, the wait, provision, serve: {block:?}"
    );
    assert!(block[0].command.contains("moto.server"), "{block:?}");
    assert!(block[3].command.contains("aws provision"), "{block:?}");
    assert!(block[4].command.contains("serve --backend aws"), "{block:?}");
    if let Err(e) = TcpListener::bind(MOTO_ADDR) {
        panic!("the README's moto listens on {MOTO_ADDR}, which something else holds ({e}): stop it");
    }

    // The block as one script, as a reader pastes it: the exports and the eval reach the server.
    // Only its listeners move off 8080 and 9464 (the environment layer over the defaults), so
    // this test and the first one can run at once.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let script: Vec<String> = block.iter().map(|s| substitute(&s.command)).collect();
    let child = bash(
        dir.path(),
        &format!("set -e\n{}", script.join("\n")),
        &[
            ("SLUICE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("SLUICE_ADMIN__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ],
    )
    .stdout(log_file.try_clone().unwrap())
    .stderr(log_file)
    .process_group(0)
    .spawn()
    .expect("spawn bash");
    let mut group = Group { child, log };
    let start = Instant::now();
    let addr = loop {
        let listening = group
            .log()
            .lines()
            .filter(|l| l.contains("sluice listening"))
            .find_map(|l| serde_json::from_str::<Value>(l).ok());
        if let Some(v) = listening {
            assert_eq!(v["backend"], "aws", "{v}");
            break v["addr"].as_str().unwrap().to_owned();
        }
        if let Some(status) = group.child.try_wait().unwrap() {
            panic!("the README's block exited ({status}):\n{}", group.log());
        }
        assert!(start.elapsed() < WAIT, "no server:\n{}", group.log());
        std::thread::sleep(Duration::from_millis(100));
    };

    // The same provisioning again is idempotent and names the same resources; a key made with
    // them lets an event through the server to DynamoDB and back.
    let aws_env = [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let vars: Vec<(String, String)> = aws_env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let provision = bash(dir.path(), &format!("'{BIN}' aws provision"), &vars)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&provision);
    assert!(provision.status.success(), "{stderr}");
    let mut env = vars.clone();
    for line in stdout.lines() {
        let (name, value) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .unwrap_or_else(|| panic!("not an export line: {line:?}"));
        env.push((name.to_owned(), value.trim_matches('\'').to_owned()));
    }
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    for required in [
        "SLUICE_QUEUE_URL",
        "SLUICE_DLQ_URL",
        "SLUICE_TABLE",
        "SLUICE_IDEMPOTENCY_TABLE",
        "SLUICE_KEYS_TABLE",
        "SLUICE_SOURCES_TABLE",
    ] {
        assert!(names.contains(&required), "{required} not printed: {stdout}");
    }
    let key = bash(
        dir.path(),
        &format!("'{BIN}' keys create --backend aws --tenant acme"),
        &env,
    )
    .output()
    .unwrap();
    let (key, stderr) = text(&key);
    let key = key.trim();
    assert!(key.starts_with("key_"), "{stderr}");
    let post = bash(
        dir.path(),
        &format!(
            "curl -s --max-time 10 -X POST http://{addr}/v1/events -H 'authorization: Bearer {key}' \
             -H 'content-type: application/json' -d '{{\"type\":\"order.created\",\"data\":{{\"n\":1}}}}'"
        ),
        &[],
    )
    .output()
    .unwrap();
    let accepted: Value = serde_json::from_slice(&post.stdout).unwrap_or(Value::Null);
    let id = accepted["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{accepted}"))
        .to_owned();
    let start = Instant::now();
    loop {
        let got = bash(
            dir.path(),
            &format!("curl -s --max-time 10 http://{addr}/v1/events/{id} -H 'authorization: Bearer {key}'"),
            &[],
        )
        .output()
        .unwrap();
        let event: Value = serde_json::from_slice(&got.stdout).unwrap_or(Value::Null);
        if event["id"] == id.as_str() {
            assert_eq!(event["data"]["n"], 1);
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "not stored on DynamoDB: {event}\n{}",
            group.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(group);
    // Killed with its group; the port closes once the process is gone.
    let start = Instant::now();
    while TcpStream::connect_timeout(&MOTO_ADDR.parse().unwrap(), Duration::from_millis(200)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the README's moto was left running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
