//! How the CLI shows things: JSON for scripts, words for the board.

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The board in words: modes first (they are what a clinician must read), then components.
pub(crate) fn print_board(status: &serde_json::Value) {
    let modes = status["modes"].as_array().cloned().unwrap_or_default();
    if modes.is_empty() {
        println!("No degradation mode is active.");
    }
    for m in &modes {
        println!("!! {} ({})", m["title"].as_str().unwrap_or_default(), m["severity"].as_str().unwrap_or_default());
        for (label, key) in [
            ("Off", "what_is_off"),
            ("Still works", "what_still_works"),
            ("Do", "what_to_do"),
            ("Call", "whom_to_call"),
        ] {
            println!("   {label}: {}", m[key].as_str().unwrap_or_default());
        }
    }
    println!("\nComponents:");
    for c in status["components"].as_array().into_iter().flatten() {
        println!(
            "  {:<11} {:<9} {}",
            c["name"].as_str().unwrap_or_default(),
            c["state"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default()
        );
    }
    println!("\nIngest queue: {}   Outbox: {}", status["ingest_queue"], status["outbox"]);
    let clocks = status["device_clocks"].as_array().cloned().unwrap_or_default();
    if !clocks.is_empty() {
        println!("\nDevice clocks (arrival minus measured time; positive: behind):");
        for c in clocks {
            println!("  {:<24} {:>+6} s", c["device_id"].as_str().unwrap_or_default(), c["offset_secs"]);
        }
    }
}
