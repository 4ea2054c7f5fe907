//! Plugin policy, in one place: which `weft:step` interfaces a component imports, whether this
//! engine serves their version, and whether the workspace grants them to the plugin.

use weft_model::workspace::Workspace;

use super::Plugin;

/// The `weft:step` version this engine serves: any `0.1.x`.
const SERVED_VERSION_PREFIX: &str = "0.1.";

/// The interface and version of a `weft:step` import (`weft:step/http@0.1.0` → `("http",
/// "0.1.0")`), or `None` for anything else.
pub fn weft_interface(import: &str) -> Option<(&str, &str)> {
    let rest = import.strip_prefix("weft:step/")?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// Whether this engine serves the `weft:step` version `import` was built against.
pub(super) fn check_version(import: &str) -> anyhow::Result<()> {
    if let Some((_, version)) = weft_interface(import)
        && !version.starts_with(SERVED_VERSION_PREFIX)
    {
        anyhow::bail!(
            "it imports `{import}`, built for `weft:step@{version}`; this engine serves `weft:step@0.1`; rebuild the plugin against this version's `wit/`"
        );
    }
    Ok(())
}

/// Checks a loaded plugin against its policy: the SHA-256 pin, and every interface it
/// imports must be one the policy grants and a version this engine serves. The message
/// names the plugin, its digest, the interface and the policy line that would allow it.
pub fn check(ws: &Workspace, plugin: &Plugin) -> Result<(), String> {
    let name = &plugin.name;
    let spec = ws.file.plugins.get(name);
    let short = &plugin.sha256[..12];
    if let Some(pin) = spec.and_then(|s| s.sha256.as_deref())
        && !pin.eq_ignore_ascii_case(&plugin.sha256)
    {
        return Err(format!(
            "plugin `{name}` has sha256 {}, but `[plugins.{name}]` pins sha256 = \"{pin}\"; the file changed. If you trust the new one, set `sha256 = \"{}\"`",
            plugin.sha256, plugin.sha256
        ));
    }
    for import in &plugin.imports {
        let Some((interface, _version)) = weft_interface(import) else {
            // WASI is linked with nothing to reach: no files, sockets or environment.
            if import.starts_with("wasi:") {
                continue;
            }
            return Err(format!(
                "plugin `{name}` (sha256 {short}…) imports `{import}`, which Weft does not provide; a step may import `weft:step` and WASI interfaces only"
            ));
        };
        // The version was checked when the plugin was loaded.
        let granted = match interface {
            "types" | "config" | "log" => true,
            "http" => spec.is_some_and(|s| s.http.is_some()),
            "s3" => spec.is_some_and(|s| s.s3.is_some()),
            "state" => spec.is_some_and(|s| s.state),
            _ => false,
        };
        if !granted {
            let line = match interface {
                "http" => "http = { allow = [\"https://api.example.com\"] }",
                "s3" => "s3 = { buckets = [\"BUCKET\"] }",
                "state" => "state = true",
                _ => {
                    return Err(format!(
                        "plugin `{name}` (sha256 {short}…) imports `{import}`, which this engine does not serve"
                    ));
                }
            };
            return Err(format!(
                "plugin `{name}` (sha256 {short}…) imports `{import}`, which its policy does not grant; to allow it, add `{line}` to `[plugins.{name}]` in `{}`",
                ws.path.display()
            ));
        }
    }
    Ok(())
}
