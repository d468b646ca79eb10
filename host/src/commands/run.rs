//! `powhost run`: requests in (a file, stdin, or one per line), a plugin handles each,
//! responses out on stdout.

use crate::backends::backend_by_name;
use crate::cli::RunArgs;
use crate::compute_service::{ComputeService, StopSignal};
use crate::input::MAX_REQUEST_BYTES;
use crate::plugin_host::{CallContext, Plugin, PluginHost, PluginLimits, PluginReply};
use anyhow::{Context, Result};
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let cancelled = install_cancel_handler();
    let session = match Session::start(&args, cancelled) {
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

/// The plugin, the compute service and the limits shared by every request of this run.
struct Session {
    host: PluginHost,
    plugin: Plugin,
    compute: Arc<ComputeService>,
    cancelled: Arc<AtomicBool>,
    time_limit: Duration,
}

impl Session {
    fn start(args: &RunArgs, cancelled: Arc<AtomicBool>) -> Result<Self> {
        let host = PluginHost::new(PluginLimits::from_args(&args.limits))?;
        let plugin = host.load(&args.plugin)?;
        let backend = backend_by_name(&args.backend)?;
        log::info!(
            "plugin `{}` {} on backend {} ({})",
            plugin.info.name,
            plugin.info.version,
            backend.name(),
            backend.device_description()
        );
        Ok(Self {
            host,
            plugin,
            compute: Arc::new(ComputeService::new(backend, args.batch)),
            cancelled,
            time_limit: args.time_limit,
        })
    }

    /// Handle one request; print what it emits and its response.
    fn answer(&self, request: &str) -> ExitCode {
        let call = CallContext {
            compute: Some(self.compute.clone()),
            // Ctrl-C ends the request after the batch in flight, which is printed (as the
            // message on the first Ctrl-C says); a second Ctrl-C quits at once.
            stop: StopSignal::finishing_on(
                self.cancelled.clone(),
                Some(Instant::now() + self.time_limit),
            ),
            emit: {
                // A reader that went away cannot receive more batches: stop computing them.
                let cancelled = self.cancelled.clone();
                Box::new(move |chunk| {
                    if !print_line(chunk) && !cancelled.swap(true, Ordering::SeqCst) {
                        log::warn!("stdout is closed: stopping the stream");
                    }
                })
            },
        };
        let start = Instant::now();
        let result = self.host.handle(&self.plugin, request, call);
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
            if self.cancelled.load(Ordering::Relaxed) {
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

/// Ctrl-C (or SIGTERM) once: stop after the current batch, delivering what was computed.
/// Twice: quit now.
fn install_cancel_handler() -> Arc<AtomicBool> {
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("powhost: interrupted again, quitting");
            std::process::exit(130);
        }
        eprintln!("powhost: cancelling after the current batch (interrupt again to quit now)");
    });
    if let Err(e) = installed {
        log::warn!("Ctrl-C will quit at once: could not install a handler ({e})");
    }
    cancelled
}
