//! The Rust SDK against the real agent.

use crate::support::Daemon;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sdk_reads_health_ready_and_status() {
    let d = Daemon::start();
    let client = warden_client::Client::new(&d.socket);
    runtime().block_on(async {
        assert!(client.health().await.unwrap());
        assert!(client.ready().await.unwrap());
        let status = client.status().await.unwrap();
        assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    });
}

#[test]
fn sdk_maps_error_answers_to_codes() {
    let d = Daemon::builder().no_callers().start();
    let client = warden_client::Client::new(&d.socket);
    runtime().block_on(async {
        let err = client.status().await.unwrap_err();
        assert_eq!(err.code(), Some("caller_not_allowed"));
        let err = client
            .get::<serde_json::Value>("/v1/nope")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("not_found"));
    });
    drop(d);
    let gone = warden_client::Client::new("/tmp/warden-no-such.sock");
    runtime().block_on(async {
        assert!(matches!(
            gone.health().await,
            Err(warden_client::Error::Transport { .. })
        ));
    });
}
