//! A workspace file and an integration file (TOML or JSON), separated by a 0xff byte: parsed,
//! then checked together. Any input must give a workspace or a list of problems, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weft_model::spec::{IntegrationFile, WorkspaceFile, parse_text};
use weft_model::workspace::Workspace;

fuzz_target!(|data: &[u8]| {
    let (ws, integration) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(ws), Ok(integration)) = (std::str::from_utf8(ws), std::str::from_utf8(integration))
    else {
        return;
    };
    for ext in ["toml", "json"] {
        let ws_path = Path::new("/nonexistent/weft").with_extension(ext);
        let int_path = Path::new("/nonexistent/integration").with_extension(ext);
        let Ok(file) = parse_text::<WorkspaceFile>(&ws_path, ws) else {
            continue;
        };
        let integrations = match parse_text::<IntegrationFile>(&int_path, integration) {
            Ok(spec) => vec![(int_path.to_path_buf(), spec)],
            Err(_) => Vec::new(),
        };
        let _ = Workspace::from_parts(&ws_path, file, integrations);
    }
});
