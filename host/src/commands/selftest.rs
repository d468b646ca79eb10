//! `powhost selftest`: the device self-test on its own, showing what it compared.

use crate::backends::backend_by_name;
use crate::cli::SelftestArgs;
use crate::compute_service::ComputeService;
use anyhow::Result;
use std::process::ExitCode;

pub fn run(args: SelftestArgs) -> Result<ExitCode> {
    let compute = ComputeService::new(backend_by_name(&args.backend.name)?, None);
    let report = crate::selftest::run(&compute)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("nonce  reference            {:<20} |Δd|", report.backend);
        for ((n, r), c) in report
            .nonces
            .iter()
            .zip(&report.reference)
            .zip(&report.computed)
        {
            println!("{n:>5}  {r:<20.17} {c:<20.17} {:.2e}", (c - r).abs());
        }
        println!("{}", report.summary());
    }
    if !report.passed {
        eprintln!(
            "error: the {} backend disagrees with the network's reference beyond the agreement budget: validators would flag its proofs as fraud",
            report.backend
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
