//! `powhost run`: requests in (a file, stdin, or one per line), a plugin handles each,
//! responses out on stdout.

use super::runtime_config;
use crate::cli::RunArgs;
use crate::input::MAX_REQUEST_BYTES;
use crate::plugin_host::{CallContext, Plugin, PluginReply};
use crate::runtime::{Host, Runtime};
use anyhow::{Context, Result};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let session = match Session::start(&args) {
        Ok(s) => s,
        Err(e) => return Ok(host_error(&e)),
    };
    if args.ndjson {
        session.serve_lines(&args.input)
    } else {
        let request = match read_input(&args.input) {
            Ok(r) => r,
            Err(e) => return Ok(host_error(&e)),
        };
        Ok(session.answer(&request))
    }
}

/// The runtime, the plugin and the time limit shared by every request of this run.
struct Session {
    /// Kept for its async threads, which watch for signals.
    _runtime: Runtime,
    host: Arc<Host>,
    plugin: Arc<Plugin>,
    time_limit: Duration,
}

impl Session {
    fn start(args: &RunArgs) -> Result<Self> {
        let runtime = Runtime::start(runtime_config(
            &args.backend.name,
            args.batch,
            &args.limits,
            None,
            "run",
        ))?;
        let host = runtime.host.clone();
        let plugin = host.load(&args.plugin)?;
        log::info!(
            "plugin `{}` {} on backend {} ({})",
            plugin.info.name,
            plugin.info.version,
            host.compute.backend().name(),
            host.compute.backend().device_description()
        );
        // Ctrl-C ends the request after the batch in flight, which is printed; a second
        // Ctrl-C quits at once.
        runtime.stop_on_signals(
            "powhost: cancelling after the current batch (interrupt again to quit now)",
        )?;
        Ok(Self {
            _runtime: runtime,
            host,
            plugin,
            time_limit: args.time_limit,
        })
    }

    /// Handle one request; print what it emits and its response.
    fn answer(&self, request: &str) -> ExitCode {
        let call = CallContext {
            compute: Some(self.host.compute.clone()),
            stop: self.host.stop.child_until(Instant::now() + self.time_limit),
            emit: {
                // A reader that went away cannot receive more batches: stop computing them,
                // and the requests after this one.
                let run = self.host.stop.clone();
                Box::new(move |chunk| {
                    if !print_line(chunk) && !run.is_stopping() {
                        log::warn!("stdout is closed: stopping the stream");
                        run.finish();
                    }
                })
            },
        };
        let start = Instant::now();
        let result = self.host.plugins.handle(&self.plugin, request, call);
        log::debug!(
            "request handled in {:.3} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        match result {
            Ok(PluginReply::Ok(body)) => {
                if !body.is_empty() {
                    print_line(&body);
                }
                ExitCode::SUCCESS
            }
            Ok(PluginReply::Error(body)) => {
                print_line(&body);
                ExitCode::FAILURE
            }
            Err(failure) => {
                eprintln!("error: {failure}");
                print_line(&crate::error_reply::build(
                    &failure.to_string(),
                    "PluginError",
                ));
                ExitCode::FAILURE
            }
        }
    }

    /// `--ndjson`: one request per line; blank lines are skipped. Exit 1 if any failed. A
    /// line that is not UTF-8 gets an error answer and the next lines are still answered; a
    /// line past the request bound ends the run (the rest of it cannot be skipped safely).
    fn serve_lines(&self, input: &str) -> Result<ExitCode> {
        let mut reader: Box<dyn BufRead> = if input == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                crate::input::open(std::path::Path::new(input))
                    .with_context(|| format!("opening {input}"))?,
            ))
        };
        let mut code = ExitCode::SUCCESS;
        for number in 1.. {
            if self.host.stop.is_stopping() {
                log::warn!("cancelled: the remaining lines are not read");
                return Ok(ExitCode::FAILURE);
            }
            let line = match crate::input::read_line_bounded(&mut reader, MAX_REQUEST_BYTES) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break,
                Err(e) => {
                    print_line(&crate::error_reply::build(
                        &format!("line {number} could not be read: {e:#}"),
                        "HostError",
                    ));
                    return Ok(ExitCode::FAILURE);
                }
            };
            let line = match String::from_utf8(line) {
                Ok(text) => text,
                Err(e) => {
                    print_line(&crate::error_reply::build(
                        &format!(
                            "line {number} is not UTF-8 text (invalid byte at offset {}); a request is JSON",
                            e.utf8_error().valid_up_to()
                        ),
                        "JSONDecodeError",
                    ));
                    code = ExitCode::FAILURE;
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            if self.answer(&line) != ExitCode::SUCCESS {
                code = ExitCode::FAILURE;
            }
        }
        Ok(code)
    }
}

fn read_input(input: &str) -> Result<String> {
    use std::io::IsTerminal;
    if input == "-" && std::io::stdin().is_terminal() {
        eprintln!("powhost: reading one request from stdin; end it with Ctrl-D (or give a file)");
    }
    let bytes = if input == "-" {
        crate::input::read_bounded(
            std::io::stdin().lock(),
            MAX_REQUEST_BYTES,
            "the request on stdin",
        )?
    } else {
        crate::input::read_file_bounded(
            std::path::Path::new(input),
            MAX_REQUEST_BYTES,
            "the request file",
        )?
    };
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "the request from {} is not UTF-8 text (invalid byte at offset {}); a request is JSON",
            display(input),
            e.utf8_error().valid_up_to()
        )
    })
}

fn display(input: &str) -> &str {
    if input == "-" { "stdin" } else { input }
}

/// A failure before any plugin ran (bad flags, unknown plugin, unreadable input): the
/// same error shape on stdout, the sentence on stderr, exit 1.
fn host_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    print_line(&crate::error_reply::build(&format!("{e:#}"), "HostError"));
    ExitCode::FAILURE
}

/// One line on stdout; false when it could not be written (a reader that went away).
fn print_line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).is_ok()
}
