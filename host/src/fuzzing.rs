//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz): each runs one of the parsers the
//! commands use on arbitrary input and checks what it can beyond "no panic" (a value that
//! parses re-serialises to one that parses the same; a built-in plugin always answers). Not
//! an API: hidden from the docs, used by nothing else.

use crate::compute_service::ComputeService;
use crate::nonce_list::{MAX_NONCES, parse_nonce_list};
use crate::plugin_host::{CallContext, Plugin, PluginHost, PluginLimits, PluginReply};
use crate::runtime::stop::Stop;
use crate::serve::http::{as_object, parse_json_body};
use crate::serve::node::{InitRequest, validation_requests};
use powhost_core::ModelParams;
use serde_json::{Value, json};
use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Duration;

/// A CPU compute service: params checks need one; nothing here builds a model.
fn compute() -> &'static ComputeService {
    static COMPUTE: OnceLock<ComputeService> = OnceLock::new();
    COMPUTE.get_or_init(|| {
        let backend = crate::backends::backend_by_name("cpu").expect("the CPU backend");
        ComputeService::new(backend, None)
    })
}

/// `--nonces A,B..C`: a list that parses is 1..=MAX_NONCES nonces, and written back in its
/// own terms (runs of consecutive nonces as ranges, the others as integers) it parses to the
/// same list.
pub fn nonce_list(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_nonce_list(text) {
        assert!(!list.is_empty() && list.len() <= MAX_NONCES);
        assert_eq!(parse_nonce_list(&write_nonce_list(&list)).unwrap(), list);
    }
}

/// Runs as `A..B`, other nonces as integers. (Written back as ten million plain integers, the
/// check, not the parser, ran past libFuzzer's 10 s under the sanitizer: fuzz/regressions/;
/// a command line cannot hold such a list anyway.)
fn write_nonce_list(list: &[i64]) -> String {
    let mut written = String::new();
    let mut i = 0;
    while i < list.len() {
        let mut j = i + 1;
        while j < list.len() && list[j - 1].checked_add(1) == Some(list[j]) {
            j += 1;
        }
        if !written.is_empty() {
            written.push(',');
        }
        let (first, last) = (list[i], list[j - 1]);
        match last.checked_add(1) {
            _ if j - i == 1 => write!(written, "{first}"),
            Some(end) => write!(written, "{first}..{end}"),
            // A run ending at i64::MAX has no exclusive end: the range stops before it.
            None => write!(written, "{first}..{last},{last}"),
        }
        .unwrap();
        i = j;
    }
    written
}

/// Model params, as `--params` and every request give them: a value that passes
/// `validate` has sizes whose arithmetic stays in range (pool, working memory, FLOPs,
/// batch choice), and the host's own check (memory included) never allocates the model;
/// written back as JSON it reads the same.
pub fn params(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(params) = ModelParams::from_json(text) else {
        return;
    };
    let again = ModelParams::from_json(&serde_json::to_string(&params).unwrap()).unwrap();
    assert!(same_params(&params, &again), "{params:?} != {again:?}");
    if params.validate().is_err() {
        return;
    }
    let compute = compute();
    let _ = powhost_core::model::pool_memory_bytes(&params);
    let _ = params.forward_flops();
    let batch = compute.batch_for(&params);
    assert!(batch >= 1);
    let _ = compute.backend().working_memory_bytes(&params, batch);
    let _ = compute.check_params(&params);
}

/// NaN-aware equality (a NaN cannot come from JSON, but be exact about it).
fn same_params(a: &ModelParams, b: &ModelParams) -> bool {
    serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
}

/// The node API's bodies in `serve`: `/api/v1/pow/init*` (an init that parses, written back,
/// parses to the same init) and `/api/v1/pow/validate` (the batch under a fixed init becomes
/// the validator's request, which the validator plugin answers).
pub fn node_body(data: &[u8]) {
    let Ok(value) = parse_json_body(data) else {
        return;
    };
    let Ok(body) = as_object(value) else {
        return;
    };
    if let Ok(init) = InitRequest::parse(body.clone(), compute()) {
        let written = json!({
            "node_id": init.node_id, "node_count": init.node_count,
            "block_hash": init.block_hash, "block_height": init.block_height,
            "public_key": init.public_key, "batch_size": init.batch_size,
            "r_target": init.r_target, "fraud_threshold": init.fraud_threshold,
            "params": init.params, "url": init.url,
        });
        let again = InitRequest::parse(written.as_object().unwrap().clone(), compute())
            .expect("a parsed init, written back, parses");
        assert_eq!(again, init);
    }
    let init = fixed_init();
    let (request, check) = validation_requests(body, &init);
    let plugins = plugins();
    for text in [check, request] {
        answered(&plugins.host, &plugins.validator, &text);
    }
}

fn fixed_init() -> InitRequest {
    let body = json!({
        "node_id": 0, "node_count": 1, "block_hash": "ab", "block_height": 1,
        "public_key": "pk", "batch_size": 100, "r_target": 1.4, "fraud_threshold": 1e-7,
        "params": ModelParams::preset("tiny").unwrap(), "url": "http://127.0.0.1:9",
    });
    InitRequest::parse(body.as_object().unwrap().clone(), compute()).expect("the fixed init")
}

struct BuiltIns {
    host: PluginHost,
    runpod: Plugin,
    validator: Plugin,
}

fn plugins() -> &'static BuiltIns {
    static PLUGINS: OnceLock<BuiltIns> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        let host = PluginHost::new(PluginLimits {
            memory_bytes: 256 << 20,
            guest_time: Duration::from_secs(5),
        })
        .expect("the plugin host");
        let runpod = host.load("runpod").expect("the runpod plugin");
        let validator = host.load("validator").expect("the validator plugin");
        BuiltIns {
            host,
            runpod,
            validator,
        }
    })
}

/// A built-in plugin's answer: a reply (ok or error) whose body is JSON, never a failure
/// (a trap, a panic, a time or memory limit) — those would be the plugin's bug. No compute
/// is granted: a request that gets that far is answered with the host's refusal.
fn answered(host: &PluginHost, plugin: &Plugin, request: &str) {
    let call = CallContext {
        compute: None,
        stop: Stop::new(),
        emit: Box::new(|chunk| {
            serde_json::from_str::<Value>(chunk).expect("an emitted chunk is JSON");
        }),
    };
    match host.handle(plugin, request, call) {
        Ok(PluginReply::Ok(body)) | Ok(PluginReply::Error(body)) => {
            if !body.is_empty() {
                serde_json::from_str::<Value>(&body)
                    .unwrap_or_else(|e| panic!("a reply that is not JSON ({e}): {body:.300}"));
            }
        }
        Err(failure) => panic!(
            "plugin `{}` failed on {request:.300}: {failure}",
            plugin.info.name
        ),
    }
}

/// Arbitrary bytes as a request through the real plugin host to both built-in plugins (as
/// `powhost run` hands them over: the text, invalid UTF-8 replaced).
pub fn plugin_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let plugins = plugins();
    answered(&plugins.host, &plugins.runpod, &text);
    answered(&plugins.host, &plugins.validator, &text);
}

#[cfg(test)]
mod tests {
    use super::write_nonce_list;

    #[test]
    fn nonce_lists_are_written_back_with_their_runs_as_ranges() {
        assert_eq!(write_nonce_list(&[5]), "5");
        assert_eq!(write_nonce_list(&[-2, -1, 0, 7, 9, 10]), "-2..1,7,9..11");
        assert_eq!(write_nonce_list(&[3, 2, 1]), "3,2,1");
        assert_eq!(
            write_nonce_list(&[i64::MAX - 2, i64::MAX - 1, i64::MAX]),
            format!("{}..{},{}", i64::MAX - 2, i64::MAX, i64::MAX)
        );
        for list in [
            vec![i64::MAX - 1, i64::MAX],
            vec![i64::MIN, i64::MIN + 1, 0],
        ] {
            super::nonce_list(write_nonce_list(&list).as_bytes());
        }
    }
}
