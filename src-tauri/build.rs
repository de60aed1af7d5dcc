//! Tauri's build step: reads tauri.conf.json and the capabilities, embeds the UI from ui/dist.

fn main() {
    tauri_build::build()
}
