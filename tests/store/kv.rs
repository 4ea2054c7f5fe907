//! The store's key-value trees on both backends: the managed state, the vault, webhook tokens,
//! schedule ticks and the compile cache's key.

use weft::secrets::MasterKey;
use weft::store::vault::Vault;
use weft_model::credential::{CredentialSpec, Scope};
use weft_model::workspace::Workspace;

use super::{Place, both};

both!(webhook_tokens_are_made_once_found_and_rotated, tokens);
fn tokens(place: Place) {
    let store = place.open();
    let tokens = store.webhook_tokens().unwrap();
    assert_eq!(tokens.token("acme", "sync").unwrap(), None);
    let first = tokens.ensure("acme", "sync").unwrap();
    assert_eq!(first.len(), 43, "32 bytes in base64url");
    assert_eq!(tokens.ensure("acme", "sync").unwrap(), first);
    let other = tokens.ensure("acme", "nightly").unwrap();
    assert_ne!(other, first);
    let target = tokens.find(&first).unwrap().unwrap();
    assert_eq!(
        (target.instance.as_str(), target.flow.as_str()),
        ("acme", "sync")
    );
    let second = tokens.rotate("acme", "sync").unwrap();
    assert_ne!(second, first);
    assert_eq!(tokens.find(&first).unwrap(), None, "the old token is gone");
    // Another process sees what this one wrote.
    let again = place.another(&store).webhook_tokens().unwrap();
    assert_eq!(again.find(&second).unwrap().unwrap().flow, "sync");
    assert_eq!(again.token("acme", "nightly").unwrap(), Some(other));
    assert_eq!(again.find("guess").unwrap(), None);
    assert_eq!(tokens.retain(|instance, _| instance != "acme").unwrap(), 2);
    assert_eq!(again.find(&second).unwrap(), None);
}

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

both!(credentials_are_sealed_and_need_the_right_key, vault);
fn vault(place: Place) {
    let store = place.open();
    let vault = Vault::open(&store, "ws", MasterKey::parse(KEY).unwrap()).unwrap();
    let spec: CredentialSpec =
        serde_json::from_value(serde_json::json!({"kind": "api-key", "key": "k-123456"})).unwrap();
    let acme = Scope::Customer("acme".into());
    vault.put(&acme, "crm", &spec).unwrap();
    vault.put(&Scope::Workspace, "crm", &spec).unwrap();
    drop(vault);
    drop(store);

    let store = place.open();
    let wrong = Vault::open(&store, "ws", MasterKey::parse(OTHER_KEY).unwrap()).unwrap_err();
    assert!(
        wrong
            .to_string()
            .contains("not the one this store's credentials were sealed with"),
        "{wrong}"
    );
    let vault = Vault::open(&store, "ws", MasterKey::parse(KEY).unwrap()).unwrap();
    assert_eq!(vault.get(&acme, "crm").unwrap(), Some(spec.clone()));
    assert_eq!(vault.list().unwrap().len(), 2);
    assert!(vault.delete(&acme, "crm").unwrap());
    assert!(!vault.delete(&acme, "crm").unwrap());
    assert_eq!(vault.get(&acme, "crm").unwrap(), None);
    // Another workspace's vault in the same store sees none of them.
    let other = Vault::open(&store, "other", MasterKey::parse(KEY).unwrap()).unwrap();
    assert_eq!(other.list().unwrap(), Vec::new());
}

both!(keys_and_schedule_ticks_survive_a_restart, keys_and_ticks);
fn keys_and_ticks(place: Place) {
    let tick = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let key = {
        let store = place.open();
        let key = store.compile_cache_key().unwrap();
        assert_eq!(store.compile_cache_key().unwrap(), key);
        let ticks = store.schedule_ticks().unwrap();
        assert_eq!(ticks.last(b"acme/nightly"), None);
        assert!(ticks.claim(b"acme/nightly", tick).unwrap());
        // Claimed once: again, or an earlier tick, is refused.
        assert!(!ticks.claim(b"acme/nightly", tick).unwrap());
        assert!(
            !ticks
                .claim(b"acme/nightly", tick - chrono::Duration::seconds(1))
                .unwrap()
        );
        key
    };
    let store = place.open();
    assert_eq!(store.compile_cache_key().unwrap(), key);
    assert_eq!(
        store.schedule_ticks().unwrap().last(b"acme/nightly"),
        Some(tick)
    );
}

both!(the_managed_state_is_applied_and_read_back, registry);
fn registry(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("integration.toml"),
        r#"
name = "avatar"
[config_vars]
customerName = { required = true }
[[flows]]
name = "sync"
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
"#,
    )
    .unwrap();
    let workspace = |name: &str| {
        format!(
            r#"
integrations = ["integration.toml"]
[plugins.path-helper]
source = {:?}
[[customers]]
id = "ftl"
name = "{name}"
config = {{ customerName = "{name}" }}
[[instances]]
id = "ftl-avatar"
customer = "ftl"
integration = "avatar"
"#,
            weft_tests::plugin("path_helper")
        )
    };
    let path = dir.path().join("weft.toml");
    std::fs::write(&path, workspace("FTL Rockets")).unwrap();
    let ws = Workspace::load(&path).unwrap();
    {
        let store = place.open();
        let registry = store.registry().unwrap();
        assert!(registry.is_empty().unwrap());
        let changes = registry.apply(&ws, false).unwrap();
        assert!(!changes.is_empty());
        assert_eq!(registry.apply(&ws, false).unwrap(), Vec::<String>::new());
    }
    let store = place.open();
    let registry = store.registry().unwrap();
    assert!(!registry.is_empty().unwrap());
    assert_eq!(registry.versions("avatar").unwrap().len(), 1);
    let stored = registry.workspace_for("ftl-avatar", None).unwrap();
    assert_eq!(stored.customer("ftl").unwrap().name, "FTL Rockets");
    assert_eq!(
        registry.instance_flows().unwrap(),
        vec![("ftl-avatar".to_string(), "sync".to_string())]
    );
    registry.set_enabled("ftl-avatar", false).unwrap();
    assert!(
        !registry
            .instance("ftl-avatar")
            .unwrap()
            .unwrap()
            .spec
            .enabled
    );
}

both!(
    each_schedule_tick_is_claimed_once_by_racing_processes,
    ticks_once
);
fn ticks_once(place: Place) {
    // Four openers racing for 20 ticks: separate processes' connections on PostgreSQL, one
    // store shared by threads on sled (which one process owns).
    let first = place.open();
    let stores: Vec<weft::store::Store> = (0..4).map(|_| place.another(&first)).collect();
    let start = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    let racers: Vec<_> = stores
        .into_iter()
        .map(|store| {
            std::thread::spawn(move || {
                let ticks = store.schedule_ticks().unwrap();
                (0..20)
                    .filter(|n| {
                        ticks
                            .claim(b"acme/every-second", start + chrono::Duration::seconds(*n))
                            .unwrap()
                    })
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let mut won: Vec<i64> = racers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    won.sort();
    // No tick twice; a racer that falls behind skips ticks others claimed after it.
    let mut unique = won.clone();
    unique.dedup();
    assert_eq!(won, unique, "a tick was claimed twice");
    assert!(won.contains(&19), "the last tick was claimed: {won:?}");
}
