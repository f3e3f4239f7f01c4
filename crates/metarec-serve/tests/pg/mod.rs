//! The test cluster's databases, shared by the server's tests and the CLI's (which include this
//! file by path): `METAREC_TEST_PG` names a PostgreSQL cluster (`scripts/test` starts a
//! throwaway one), and each test makes a database of its own on it.

/// The URL of the test cluster's maintenance database.
pub fn cluster() -> String {
    std::env::var("METAREC_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "METAREC_TEST_PG is not set: run the tests through scripts/test, which starts a \
             throwaway PostgreSQL, or start one with `scripts/pg start DIR` and export the URL it prints"
        )
    })
}

/// A new empty database named after the test; its URL.
pub fn database(name: &str) -> String {
    let url = cluster();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        tokio::spawn(conn);
        // Two calls: PostgreSQL runs a multi-statement string as one transaction, which
        // neither statement may run in.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client.batch_execute(&sql).await.unwrap();
        }
    });
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}
