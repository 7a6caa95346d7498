//! A Postgres server on loopback whose `pg_hba.conf` lets clients in only over TLS: Gangway
//! speaks to a loopback server in the clear unless told otherwise, and must then try again
//! with TLS rather than fail — while a URL that asks for the clear itself is refused as it asks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use gangway::private_postgres::{self, PrivatePostgres};

/// A private server (its own data directory, removed at the end) that refuses loopback
/// connections without TLS.
struct TlsOnlyServer {
    server: Option<PrivatePostgres>,
    data: PathBuf,
}

impl TlsOnlyServer {
    fn start() -> Self {
        let bin = private_postgres::find_binaries()
            .expect("PostgreSQL's server programs (initdb, pg_ctl) are installed");
        let data = std::env::temp_dir().join(format!("gangway-pg-tls-{}", uuid::Uuid::new_v4()));
        let mut server = PrivatePostgres::start(&bin, &data).expect("the private server starts");
        server.stop().expect("the private server stops");
        let certificate = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .expect("a self-signed certificate");
        write(&data.join("server.crt"), &certificate.cert.pem(), 0o644);
        write(
            &data.join("server.key"),
            &certificate.key_pair.serialize_pem(),
            0o600,
        );
        write(
            &data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
            0o600,
        );
        let conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        write(
            &data.join("postgresql.conf"),
            &format!("{conf}\nssl = on\n"),
            0o600,
        );
        let server = PrivatePostgres::start(&bin, &data).expect("the server starts with TLS");
        Self {
            server: Some(server),
            data,
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().unwrap().url("postgres")
    }
}

impl Drop for TlsOnlyServer {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Writes a file of the server's (owned by the `postgres` user when the tests run as root,
/// as the server then does: it refuses a key others may read).
fn write(path: &Path, contents: &str, mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if private_postgres::running_as_root() {
        let chowned = Command::new("chown")
            .arg("postgres:")
            .arg(path)
            .status()
            .unwrap();
        assert!(chowned.success(), "chown {}", path.display());
    }
}

/// Whether the connection `db` runs on speaks TLS.
async fn over_tls<'e>(db: impl sqlx::PgExecutor<'e>) -> bool {
    sqlx::query_scalar("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_loopback_server_that_demands_tls_is_spoken_to_with_tls() {
    let server = TlsOnlyServer::start();
    let url = server.url();

    let pool = gangway::db::connect(&url, 2).await.unwrap();
    assert!(over_tls(&pool).await, "the pool's connection uses TLS");
    pool.close().await;

    let mut one = gangway::db::connect_one(&url).await.unwrap();
    assert!(over_tls(&mut one).await, "a single connection uses TLS too");

    // The URL's own choice is kept: asked for the clear, the server's refusal stands.
    let refused = gangway::db::connect(&format!("{url}?sslmode=disable"), 2)
        .await
        .expect_err("sslmode=disable is refused by a server that demands TLS");
    let code = match &refused {
        sqlx::Error::Database(e) => e.code().map(|c| c.into_owned()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("28000"), "{refused}");
}
