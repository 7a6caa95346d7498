//! The harness itself: what a test leaves behind on the Postgres server.

use crate::helpers::TestApp;

/// Runs `test` to its end on a thread and runtime of its own, as the test harness runs a test,
/// and returns the name of the database it used.
fn database_of_a_test(test: impl FnOnce(TestApp) + Send + 'static) -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let app = TestApp::spawn().await;
                let url = url::Url::parse(&app.database_url).unwrap();
                sender.send(url.path()[1..].to_owned()).unwrap();
                test(app);
            })
    })
    .join();
    receiver.recv().unwrap()
}

async fn database_exists(name: &str) -> bool {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::PgPool::connect(&server).await.unwrap();
    sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tests_database_is_dropped_when_the_test_ends_passed_or_failed() {
    let passed = database_of_a_test(|app| {
        assert!(app.database_url.contains("gangway_test_"));
    });
    assert!(
        !database_exists(&passed).await,
        "{passed} outlived its test"
    );

    let failed = database_of_a_test(|_| panic!("a failing test"));
    assert!(
        !database_exists(&failed).await,
        "{failed} outlived its failing test"
    );
}
