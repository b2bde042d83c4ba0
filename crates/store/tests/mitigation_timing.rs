//! Timings of the mitigation hot paths (SQLite, and the stage on PostgreSQL), for docs/PERFORMANCE.md. Ignored (they
//! build large databases and assert nothing about time); run them by hand, in release:
//!
//! ```text
//! cargo test --release -p palisade-store --test mitigation_timing -- --ignored --nocapture
//! ```
//!
//! The PostgreSQL stage timing uses a throwaway database of the server at
//! `PALISADE_TEST_DATABASE_URL` (as the conformance tests do).
//!
//! `MITIGATION_TIMING_CERTS` (default 200,000) sets the fleet of the stage timing and
//! `MITIGATION_TIMING_FINDINGS` (default 1,000,000) the audit of the planning timing.
//! The databases live under `MITIGATION_TIMING_DIR` (default: the system temp dir).

use std::time::{Duration, Instant};

use palisade_store::{
    EffectRefusal, ExecutionError, MitigationEffect, MitigationStage, MitigationStep,
    MitigationTaskCreated, MitigationTaskRecord, MitigationTaskStore, NewWorkItem, Scope,
    SqliteStore, StageOutcome, WorkQueue,
};
use palisade_testdb::TestDatabase;
use rand::seq::SliceRandom;
use rusqlite::Connection;

const T0: i64 = 1_700_000_000_000;
const STAGE: usize = 1_000;
const CHECK: &str = "DEVICE_CERTIFICATE_EXPIRING_CHECK";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scope() -> Scope {
    Scope {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
    }
}

fn hex(n: usize, salt: &str) -> String {
    // Stable, random-looking ids (like SHA-256 ones) without a hashing dependency.
    let mut x = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.len() as u64;
    let mut out = String::with_capacity(64);
    for _ in 0..4 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        out.push_str(&format!("{x:016x}"));
    }
    out
}

/// The `n`-th finding of the audit in listing order. An audit's findings share one
/// finding time, so a chunk (consecutive findings in listing order) holds consecutive
/// finding ids: random-looking, but in ascending order.
fn finding_id(n: usize) -> String {
    format!("{n:08x}{}", &hex(n, "finding")[..24])
}

fn temp_dir() -> tempfile::TempDir {
    match std::env::var("MITIGATION_TIMING_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir).expect("tempdir"),
        Err(_) => tempfile::tempdir().expect("tempdir"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

/// A fleet of ACTIVE device certificates shaped like real ones (a PEM of about 800
/// bytes, DER names and key), inserted directly in one transaction.
fn insert_fleet(path: &std::path::Path, certs: usize) -> Vec<String> {
    let mut conn = Connection::open(path).expect("open");
    let tx = conn.transaction().expect("tx");
    let mut ids = Vec::with_capacity(certs);
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO certificates (account_id, region, id, arn, pem,
                     certificate_mode, owned_by, subject, issuer, subject_der, issuer_der,
                     serial_number, not_before_ms, not_after_ms, key_algorithm, key_bits,
                     key_curve, public_key, created_at_ms)
                 VALUES ('000000000000', 'us-east-1', ?1, ?2, ?3, 'DEFAULT',
                     '000000000000', ?4, 'CN=issuer', ?5, x'3000', ?6, ?7, ?8, 'EC',
                     256, 'P-256', ?9, ?7)",
            )
            .expect("prepare");
        let mut state = tx
            .prepare(
                "INSERT INTO certificate_states (account_id, region, id, status,
                     generation_id, customer_version, updated_at_ms, row_id)
                 VALUES ('000000000000', 'us-east-1', ?1, 'ACTIVE', ?2, 1, ?3, ?4)",
            )
            .expect("prepare");
        let body: String = "MIIB".repeat(190);
        for i in 0..certs {
            let id = hex(i, "cert");
            stmt.execute(rusqlite::params![
                id,
                format!("arn:aws:iot:us-east-1:000000000000:cert/{id}"),
                format!("-----BEGIN CERTIFICATE-----\n{body}{i}\n-----END CERTIFICATE-----\n"),
                format!("CN=device-{i}"),
                format!("device-{i}").into_bytes(),
                format!("{i:x}"),
                T0 - 1_000_000,
                T0 + 1_000_000,
                vec![0x30u8; 91],
            ])
            .expect("insert certificate");
            state
                .execute(rusqlite::params![
                    id,
                    hex(i, "generation"),
                    T0 - 1_000_000,
                    tx.last_insert_rowid()
                ])
                .expect("insert state");
            ids.push(id);
        }
    }
    tx.commit().expect("commit");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing, run by hand in release"]
async fn deactivate_certificate_stage_timing() {
    let certs = env_usize("MITIGATION_TIMING_CERTS", 200_000) / STAGE * STAGE;
    let dir = temp_dir();
    let path = dir.path().join("palisade.db");
    drop(SqliteStore::open(&path).expect("create schema"));
    let started = Instant::now();
    let mut ids = insert_fleet(&path, certs);
    eprintln!("fleet of {certs} certificates in {:?}", started.elapsed());
    finding_order(&mut ids);

    let store = SqliteStore::open(&path).expect("open");
    time_stages(&store, &ids).await;
}

/// Puts certificate ids in the order an audit's findings name them: finding ids start
/// with the certificate id's first characters (engine audits/findings.rs), so a chunk
/// names neighbouring certificates. `SHUFFLE=1` times an order unrelated to the ids
/// (finding ids before that change) instead.
fn finding_order(ids: &mut [String]) {
    if std::env::var("SHUFFLE").is_ok_and(|v| v == "1") {
        ids.shuffle(&mut rand::thread_rng());
    } else {
        ids.sort();
    }
}

/// Runs a task deactivating every certificate of `ids` (in that order, a stage of
/// [`STAGE`] per chunk, as the engine would) and prints the stage timings.
async fn time_stages<S: MitigationTaskStore + WorkQueue>(store: &S, ids: &[String]) {
    let scope = scope();
    let certs = ids.len();
    let chunks: Vec<NewWorkItem> = (0..certs / STAGE)
        .map(|i| NewWorkItem {
            id: format!("timing-chunk-{i:05}"),
            queue: "timing".into(),
            payload: format!("{i}"),
            run_after_ms: T0,
        })
        .collect();
    let task = MitigationTaskRecord {
        task_id: "timing".into(),
        client_request_token: "timing".into(),
        status: "IN_PROGRESS".into(),
        started_at_ms: T0,
        finished_at_ms: None,
        audit_task_id: Some("audit".into()),
        finding_ids: Vec::new(),
        body_json: "{}".into(),
    };
    let stats = [palisade_store::MitigationCheckStats {
        check_name: CHECK.into(),
        total: i64::try_from(certs).unwrap(),
        ..Default::default()
    }];
    let created = store
        .create_mitigation_task(&scope, &task, &stats, &chunks, 10)
        .await
        .unwrap();
    assert_eq!(created, MitigationTaskCreated::Created);

    let mut times = Vec::new();
    let all = Instant::now();
    for chunk in ids.chunks(STAGE) {
        let item = store
            .claim_work("timing", "w", 1, T0, 600_000)
            .await
            .unwrap()
            .remove(0);
        let n: usize = item.payload.parse().unwrap();
        let steps = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| MitigationStep {
                finding_id: finding_id(n * STAGE + i),
                check_name: CHECK.into(),
                action_index: 0,
                actions_after: 0,
                started_at_ms: T0,
                effect: MitigationEffect::DeactivateCertificate {
                    certificate_id: id.clone(),
                },
            })
            .collect();
        let stage = MitigationStage {
            task_id: "timing".into(),
            work_id: item.id,
            worker: "w".into(),
            next_payload: None,
            steps,
            skipped: Vec::new(),
            now_ms: T0 + 1,
        };
        let at = Instant::now();
        let outcome = store
            .apply_mitigation_stage(&scope, &stage, explain)
            .await
            .unwrap();
        times.push(at.elapsed());
        assert!(matches!(outcome, StageOutcome::Applied { .. }));
    }
    let elapsed = all.elapsed();
    let (task, stats) = store
        .get_mitigation_task(&scope, "timing")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.status, "COMPLETED");
    assert_eq!(stats[0].succeeded, i64::try_from(certs).unwrap());
    times.sort();
    eprintln!(
        "{} stages of {STAGE} DeactivateCertificate steps: p50 {:?}, p90 {:?}, max {:?}; \
         {:.0} executions/s through apply_mitigation_stage (claims included)",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        times.last().unwrap(),
        certs as f64 / elapsed.as_secs_f64()
    );

    let findings: Vec<String> = (0..STAGE).map(finding_id).collect();
    // Twice: the first call also prepares the statement.
    for _ in 0..2 {
        let at = Instant::now();
        let found = store
            .findings_with_execution(&scope, "timing", &findings, 0)
            .await
            .unwrap();
        eprintln!(
            "findings_with_execution over {STAGE} findings: {:?} ({} found)",
            at.elapsed(),
            found.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing, run by hand in release"]
async fn postgres_deactivate_certificate_stage_timing() {
    let certs = env_usize("MITIGATION_TIMING_CERTS", 200_000) / STAGE * STAGE;
    let db = TestDatabase::create().await;
    let store = db.connect().await;
    let client = db.raw_client().await;
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO certificates (account_id, region, id, arn, pem, status,
                 certificate_mode, owned_by, generation_id, customer_version, subject, issuer,
                 subject_der, issuer_der, serial_number, not_before_ms, not_after_ms,
                 key_algorithm, key_bits, key_curve, public_key, created_at_ms, updated_at_ms)
             SELECT '000000000000', 'us-east-1', c.id,
                 'arn:aws:iot:us-east-1:000000000000:cert/' || c.id,
                 '-----BEGIN CERTIFICATE-----' || repeat('MIIB', 190) || i, 'ACTIVE',
                 'DEFAULT', '000000000000', md5(c.id), 1, 'CN=device-' || i, 'CN=issuer',
                 convert_to('device-' || i, 'UTF8'), '\\x3000', to_hex(i), $1, $2, 'EC', 256,
                 'P-256', '\\x30', $1, $1
             FROM generate_series(1, $3::bigint) AS i,
                 LATERAL (SELECT md5(i::text) || md5('c' || i) AS id) AS c",
            &[
                &(T0 - 1_000_000),
                &(T0 + 1_000_000),
                &i64::try_from(certs).unwrap(),
            ],
        )
        .await
        .expect("insert fleet");
    client
        .batch_execute("VACUUM ANALYZE certificates")
        .await
        .expect("analyze");
    let mut ids: Vec<String> = client
        .query("SELECT id FROM certificates", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    eprintln!("fleet of {certs} certificates in {:?}", started.elapsed());
    finding_order(&mut ids);
    time_stages(&store, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing, run by hand in release"]
async fn audit_finding_planning_timing() {
    let findings = env_usize("MITIGATION_TIMING_FINDINGS", 1_000_000);
    let dir = temp_dir();
    let path = dir.path().join("palisade.db");
    drop(SqliteStore::open(&path).expect("create schema"));
    {
        let mut conn = Connection::open(&path).expect("open");
        let inserting = Instant::now();
        let tx = conn.transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO audit_findings (account_id, region, finding_id, task_id,
                         check_name, task_start_ms, finding_time_ms, resource_key,
                         is_suppressed, body_json)
                     VALUES ('000000000000', 'us-east-1', ?1, 'audit', ?2, ?3, ?3, ?4, 0, ?5)",
                )
                .expect("prepare");
            let body = format!(
                "{{\"severity\":\"MEDIUM\",\"reason\":\"{}\"}}",
                "x".repeat(300)
            );
            for i in 0..findings {
                let check = if i % 10 == 0 {
                    "DEVICE_CERTIFICATE_KEY_QUALITY_CHECK"
                } else {
                    CHECK
                };
                stmt.execute(rusqlite::params![
                    finding_id(i),
                    check,
                    T0 + i64::try_from(i / 1_000).unwrap(),
                    hex(i, "cert"),
                    body,
                ])
                .expect("insert finding");
            }
        }
        tx.commit().expect("commit");
        eprintln!("{findings} findings inserted in {:?}", inserting.elapsed());
        let key = ["000000000000", "us-east-1", "audit"];
        let after = ["000000000000", "us-east-1", "audit", "999", "0", "k"];
        for (sql, params) in [
            (
                "SELECT check_name, COUNT(*) FROM audit_findings
                 WHERE account_id = ?1 AND region = ?2 AND task_id = ?3
                 GROUP BY check_name ORDER BY check_name",
                &key[..],
            ),
            (
                "SELECT finding_time_ms, finding_id FROM audit_findings
                 WHERE account_id = ?1 AND region = ?2 AND task_id = ?3
                   AND (finding_time_ms, finding_id) > (?5, ?6)
                 ORDER BY finding_time_ms, finding_id LIMIT 1 OFFSET ?4",
                &after[..],
            ),
        ] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            eprintln!("plan: {}", plan.join(" | "));
        }
    }
    // Cold-ish: a fresh store, so its connections start with empty caches.
    let store = SqliteStore::open(&path).expect("open");
    let scope = scope();
    let at = Instant::now();
    let counts = store
        .count_audit_findings_by_check(&scope, "audit")
        .await
        .unwrap();
    eprintln!(
        "count_audit_findings_by_check over {findings}: {:?} {counts:?}",
        at.elapsed()
    );
    let at = Instant::now();
    let boundaries = store
        .audit_finding_boundaries(&scope, "audit", STAGE)
        .await
        .unwrap();
    eprintln!(
        "audit_finding_boundaries every {STAGE} over {findings}: {:?} ({} keys)",
        at.elapsed(),
        boundaries.len()
    );
    assert_eq!(boundaries.len(), findings / STAGE);
}

/// The stages here refuse nothing; any refusal reads as its debug form.
fn explain(refusal: &EffectRefusal) -> ExecutionError {
    ExecutionError {
        code: "Refused".into(),
        message: format!("{refusal:?}"),
    }
}
