//! How the CLI shows things: JSON for scripts, words for the board. Output goes through
//! [`write_out`], so a reader that closes the pipe early (`vigil show readings | head -1`) ends the
//! command quietly instead of a panic.

use std::fmt::Write as _;
use std::io::Write as _;

/// `println!` that returns a closed pipe as an error instead of panicking (use with `?`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::print::write_out(&format!("{}\n", format_args!($($arg)*)))?
    };
}

/// Writes to stdout; a closed pipe is an [`std::io::ErrorKind::BrokenPipe`] error, which `main`
/// turns into a quiet exit 0.
pub(crate) fn write_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    write_out(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
    Ok(())
}

/// What a payload yields under a profile, in words for the engineer writing the profile.
pub(crate) fn print_trial(trial: &pipeline_core::api::ProfileTrial) -> std::io::Result<()> {
    let mut text = String::new();
    trial_text(trial, &mut text).map_err(std::io::Error::other)?;
    write_out(&text)
}

fn trial_text(trial: &pipeline_core::api::ProfileTrial, out: &mut String) -> std::fmt::Result {
    writeln!(out, "profile {}", trial.profile)?;
    writeln!(out, "readings ({}):", trial.readings.len())?;
    for r in &trial.readings {
        let patient = if r.patient_identifier_systems.is_empty() {
            String::new()
        } else {
            format!("  patient in {} (value withheld)", r.patient_identifier_systems.join(", "))
        };
        writeln!(
            out,
            "  {}  {} ({})  {} {}  {}  {}{patient}",
            r.device_id,
            r.metric,
            r.mdc_code,
            r.value,
            r.unit,
            r.observed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.validity
        )?;
    }
    writeln!(out, "unmapped fields ({}):", trial.unmapped.len())?;
    for field in &trial.unmapped {
        writeln!(out, "  {field}")?;
    }
    writeln!(out, "problems ({}):", trial.problems.len())?;
    for p in &trial.problems {
        writeln!(out, "  {}: {}", p.reason, p.detail)?;
    }
    if trial.problems.is_empty() {
        writeln!(out, "The payload would be stored.")?;
    } else {
        writeln!(out, "The payload would be rejected whole (or, for no_patient_identity, quarantined).")?;
    }
    Ok(())
}

/// The board in words: modes first (they are what a clinician must read), then components.
pub(crate) fn print_board(status: &serde_json::Value) -> std::io::Result<()> {
    let mut text = String::new();
    board_text(status, &mut text).map_err(std::io::Error::other)?;
    write_out(&text)
}

fn board_text(status: &serde_json::Value, out: &mut String) -> std::fmt::Result {
    let modes = status["modes"].as_array().cloned().unwrap_or_default();
    if modes.is_empty() {
        writeln!(out, "No degradation mode is active.")?;
    }
    for m in &modes {
        writeln!(
            out,
            "!! {} ({})",
            m["title"].as_str().unwrap_or_default(),
            m["severity"].as_str().unwrap_or_default()
        )?;
        for (label, key) in [
            ("Off", "what_is_off"),
            ("Still works", "what_still_works"),
            ("Do", "what_to_do"),
            ("Call", "whom_to_call"),
        ] {
            writeln!(out, "   {label}: {}", m[key].as_str().unwrap_or_default())?;
        }
    }
    writeln!(out, "\nComponents:")?;
    for c in status["components"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {:<11} {:<9} {}",
            c["name"].as_str().unwrap_or_default(),
            c["state"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "\nIngest queue: {}   Awaiting storage: {}   Outbox: {}",
        status["ingest_queue"], status["ingest_unstored"], status["outbox"]
    )?;
    let clocks = status["device_clocks"].as_array().cloned().unwrap_or_default();
    if !clocks.is_empty() {
        writeln!(out, "\nDevice clocks (arrival minus measured time; positive: behind):")?;
        for c in clocks {
            writeln!(out, "  {:<24} {:>+6} s", c["device_id"].as_str().unwrap_or_default(), c["offset_secs"])?;
        }
    }
    Ok(())
}
