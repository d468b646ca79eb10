//! The plugin side of the WIT plumbing: a plugin implements [`Handler`] (its own logic) and
//! exports it with [`export_handler!`](crate::export_handler); the kit turns it into the world's
//! `Guest`, its results into replies.

use crate::bindings;
use crate::errors::RequestError;
use crate::{Level, PluginInfo, Reply, ReplyStatus, log};

/// A request-handling plugin: its own logic, and nothing of the WIT plumbing.
pub trait Handler {
    /// Name, version and a one-line summary, for `powhost plugins` and the logs.
    fn info() -> PluginInfo;
    /// Handle one request: the response body, or the error it is refused with.
    fn handle(request: &str) -> Result<String, RequestError>;
}

/// Every [`Handler`] is the world's `Guest`: an `Ok` body is an `ok` reply, an error is logged
/// (at info, as `TYPE: message`) and answered as `{"error": …, "error_type": …}`.
impl<H: Handler> bindings::Guest for H {
    fn handle(request: String) -> Reply {
        reply(H::handle(&request))
    }

    fn info() -> PluginInfo {
        H::info()
    }
}

/// The reply for a handler's result (see [`Handler`]).
pub fn reply(result: Result<String, RequestError>) -> Reply {
    match result {
        Ok(body) => Reply {
            status: ReplyStatus::Ok,
            body,
        },
        Err(e) => {
            log::log(Level::Info, &format!("{}: {}", e.error_type, e.message));
            Reply {
                status: ReplyStatus::Error,
                body: e.to_json(),
            }
        }
    }
}

/// Export a [`Handler`] as the plugin's component: `export_handler!(MyPlugin);` in its lib.rs.
#[macro_export]
macro_rules! export_handler {
    ($handler:ident) => {
        $crate::bindings::export!($handler with_types_in $crate::bindings);
    };
}
