//! Helpers the loader's test modules share.

use super::*;
use std::collections::BTreeMap;

/// Strict, with no environment and no working directory.
pub(super) fn opts() -> LoadOptions {
    LoadOptions {
        strict: true,
        allow_unsafe: Vec::new(),
        envs: BTreeMap::new(),
        cwd: None,
        reload: None,
    }
}

/// A fresh directory under the system's temp directory.
pub(super) fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "frp-rs-cfg-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The error of an frpc config that must not load, as one text.
pub(super) fn client_err(text: &str) -> String {
    match load_client_text(text, Path::new("frpc.toml"), &opts()) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => e.to_string(),
    }
}

/// The error of an frps config that must not load, as one text.
pub(super) fn server_err(text: &str) -> String {
    match load_server_text(text, Path::new("frps.toml"), &opts()) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => e.to_string(),
    }
}
