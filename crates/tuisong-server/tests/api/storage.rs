//! What the node keeps on disk: owner-only modes for the data directory and its files,
//! and finished messages swept by the retention worker once their retention is over.

use crate::helpers::*;
use serde_json::json;

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_its_files_are_owner_only_even_if_they_were_not() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let mut data = std::path::PathBuf::new();
    let app = spawn_app_with(|s| {
        // A data dir an older release (or a umask of 022) left readable to everyone.
        data = s.data_dir.join("data");
        std::fs::create_dir(&data).expect("dir");
        for f in ["admin-token", "tuisong.db"] {
            std::fs::write(
                data.join(f),
                if f == "admin-token" {
                    "adm_0123456789abcdef0123"
                } else {
                    ""
                },
            )
            .expect("file");
        }
        for p in [
            data.clone(),
            data.join("admin-token"),
            data.join("tuisong.db"),
        ] {
            let m = if p.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).expect("chmod");
        }
        s.data_dir = data.clone();
    })
    .await;
    // A write, so the WAL and its index exist.
    app.new_user("u").await;
    assert_eq!(mode(&data), 0o700);
    for f in [
        "admin-token",
        "tuisong.db",
        "tuisong.db-wal",
        "tuisong.db-shm",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let fresh = spawn_app_with(|s| s.data_dir = s.data_dir.join("new/data")).await;
    let dir = fresh.dir.path().join("new/data");
    assert_eq!(mode(&dir), 0o700, "created owner-only");
    assert_eq!(mode(&dir.join("tuisong.db")), 0o600);
}

#[tokio::test]
async fn a_delivered_message_is_swept_after_its_retention_and_a_deliverable_one_stays() {
    let app = spawn_app_with(|s| s.retention_interval = std::time::Duration::from_millis(20)).await;
    let (t, d, id, data) = app.subscribed(2).await;
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    let delivered = v["msgid"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let (s, v) = app
        .call(
            reqwest::Method::POST,
            &format!("/client/v1/messages/{delivered}/ack"),
            Some(&d.token),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // Never acknowledged: still deliverable when the delivered one's 90 days are over.
    let v = app
        .send(
            &t,
            json!({"touser": d.openid, "template_id": id, "data": data}),
        )
        .await;
    let waiting = v["msgid"].as_u64().unwrap_or_else(|| panic!("{v}"));
    app.clock.advance_ms(91 * 86_400_000);
    let t = app.token().await;
    let get = |msgid: u64| {
        let (app, t) = (&app, t.clone());
        async move {
            app.call(
                reqwest::Method::GET,
                &format!("/v1/messages/{msgid}"),
                Some(&t),
                None,
            )
            .await
        }
    };
    let mut gone = false;
    for _ in 0..250 {
        if get(delivered).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "the delivered message was swept");
    let (s, m) = get(waiting).await;
    assert_eq!((s, m["status"].as_str()), (200, Some("accepted")), "{m}");
}
